# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-auth-session"
sha256 = "8768ee6e5aadf3a7b52cbeabac63855ee92b2a7d90b83de8df53eedd3c5024ea"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "aNRSRKGzU9eLReI/qEdswrUKGN4mlGyJksIiNsWhlw48DwMplypht7tdTHMnPKpZGuRq3h3QfqPg5ZSB6ISWBw=="
