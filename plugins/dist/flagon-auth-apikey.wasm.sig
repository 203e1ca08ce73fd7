# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-auth-apikey"
sha256 = "fef2604454ee1517832c0d04e4225190eb08aa1c443efedf71f75c4d75ba3fc7"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "zaMANfXNOAcHfsh9PAAmNvgq0F8ejuwSXE0wdhtrI5yXN/QWTj8S/wK3qk5VR6SW1oMGHxMLH9EkojB3QkkICw=="
