# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-sqlite"
sha256 = "944e51c3f5225749aa27c568af47ac27e48e6c79aedf1058884bfdbfd2dae73d"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "G2yCyhFToYg4lCXnZtkYwgMy79H0iWPrQuFQSdQfQsKmNKxf7XJ6pZji1S5DjtcKQUfcCQacX13COA58Z5IUAA=="
