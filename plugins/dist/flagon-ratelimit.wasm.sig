# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-ratelimit"
sha256 = "d565b7f58810c264f09411cc44423127903508a5a0adb68038059d966ed425cb"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "5aQ4GN5d3sMa+zNUNiZ+suUkWibQZvfJSXWD77kwrgoUjsqWrHwnf7HLlOx23gmHcoFhoeB8fGUIW2hnLP0GCg=="
