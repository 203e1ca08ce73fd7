CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL UNIQUE,
    score REAL,
    data BLOB,
    done BOOLEAN NOT NULL DEFAULT 0
);

INSERT INTO notes (body, score, done) VALUES ('welcome', 0.5, 0);
