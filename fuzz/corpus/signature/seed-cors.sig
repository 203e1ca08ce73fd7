# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-cors"
sha256 = "9f0b5739dd9ab99fb6a90860e08680b97a575bd5273c534b088f441f80798a3d"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "PIPrCfjl1T085jOB2+0eA52Y5NetoZQ53Ovolk7t5IiXcJGlMeuLgNTbaSO/l83X/y7raQA3TFVcHRgRA+KVDQ=="
