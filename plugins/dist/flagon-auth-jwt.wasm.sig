# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-auth-jwt"
sha256 = "1e10ce910df99a4d5356c85784a5363180c9cfa46f806a53d9d057803c8f4645"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "ZnK4G0WawJ7lSQqAq+D1D6ZnBTiwPLm7Hrlzzcs9SBf/yRkyx/n2mhocQzudrXtWPkodGGBewShPG6oLs4nRAA=="
