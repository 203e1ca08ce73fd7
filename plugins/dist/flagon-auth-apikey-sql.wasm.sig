# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-auth-apikey-sql"
sha256 = "0fc3a76c7ca5af39da85bc0a0c655a397fdb23801ec9d2471020f6f7bdfbe3e9"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "tz383a+4NN5jSSdPc4jDy6wkt/lMsCNjxhZcEfgEkx3snfCflVo9GgrWGflyp8TMGHRFxV4B7hY86efUzy93Bw=="
