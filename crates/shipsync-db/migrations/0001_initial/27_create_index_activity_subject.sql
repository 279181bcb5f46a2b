CREATE INDEX activity_subject ON activity (subject_id, id);
