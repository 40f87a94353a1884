-- Sign-in sessions (PostgreSQL). A session is what a sign-in starts and each refresh renews: it
-- ends for good 90 days after the sign-in however often it is renewed, it is bound to the
-- device (client id) it signed in from, and an assistant holds at most a few at once. A refresh
-- token that was traded in stays behind as kind 'rotated' until its session ends, so a second
-- use of it (a stolen copy) is recognised and revokes the whole session.
CREATE TABLE sessions (
  session_id  TEXT   PRIMARY KEY,
  user_id     BIGINT NOT NULL,
  client_id   TEXT,
  device_name TEXT   NOT NULL,
  created_at  BIGINT NOT NULL,
  expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id, created_at);
-- Sessions signed in before this table existed end 90 days after their first token.
INSERT INTO sessions (session_id, user_id, client_id, device_name, created_at, expires_at)
  SELECT session_id, MIN(user_id), NULL, MIN(device_name), MIN(created_at), MIN(created_at) + 7776000000
  FROM tokens GROUP BY session_id;
