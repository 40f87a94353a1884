-- Who gave a training session: the assistant (no value) or a trained farmer, a member named by
-- reference, so the reproducibility outcome can follow who trained whom. Existing sessions keep
-- their rows and their free-text trainer; they count as given by the assistant.
ALTER TABLE training_sessions ADD COLUMN trainer_member_id TEXT;
CREATE INDEX training_sessions_trainer ON training_sessions(trainer_member_id) WHERE trainer_member_id IS NOT NULL;
