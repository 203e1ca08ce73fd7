# Flagon component signature: check it with `flagon verify --key <public key> <file>`
format = 1
id = "flagon-postgres"
sha256 = "69b34f741cab58556c0f9ed5dac9ab8068c77f32bcd8befba9c5c8e9cef0d50d"
key = "ed25519:EzczRmWOZNv0AUYeMwxOLlgo1Hm+wypVWm6r2U27ASE="
signature = "VT1JbIMZBLkC7IqBFh9be1Npe+qc+dQCJgvsDF5EhTTsqIbzadrukFKDr4nt389Mi4+kOt0BSLJw8eeun3IGDw=="
