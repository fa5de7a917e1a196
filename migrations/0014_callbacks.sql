-- Outcome callbacks for producers in other languages: a job may name an HTTP URL (`callback_url`) or a
-- Redis list (`reply_to`) to be told when it ends. The trigger enqueues a `conveyor.callback` job in the
-- same transaction as the ending (completed, dead or cancelled, by whatever path: a worker's result, a
-- rescue, an operator's cancel), so the delivery is durable and retried like any job. Only rows that
-- name a callback pay for it: the WHEN clause is checked before the function is called.
ALTER TABLE conveyor_jobs
    ADD COLUMN callback_url text CONSTRAINT conveyor_jobs_callback_url_check CHECK (char_length(callback_url) BETWEEN 1 AND 2048),
    ADD COLUMN reply_to text CONSTRAINT conveyor_jobs_reply_to_check CHECK (char_length(reply_to) BETWEEN 1 AND 255);

CREATE FUNCTION conveyor_enqueue_callback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conveyor_jobs (id, queue, kind, args, priority, max_attempts, run_at, inserted_at, tags)
    VALUES (
        gen_random_uuid(), NEW.queue, 'conveyor.callback',
        jsonb_build_object(
            'url', NEW.callback_url,
            'reply_to', NEW.reply_to,
            'body', jsonb_build_object(
                'id', NEW.id, 'kind', NEW.kind, 'state', NEW.state, 'attempt', NEW.attempt, 'result', NEW.result,
                'error', CASE WHEN NEW.state = 'dead' THEN NEW.errors -> -1 -> 'message'
                              WHEN NEW.state = 'cancelled' THEN to_jsonb(NEW.cancel_reason) END,
                'finished_at', NEW.finished_at)),
        NEW.priority, 20, now(), now(), ARRAY['callback:' || NEW.id::text]);
    RETURN NULL;
END
$$;

CREATE TRIGGER conveyor_jobs_callback AFTER UPDATE OF state ON conveyor_jobs
    FOR EACH ROW
    WHEN (NEW.state IN ('completed', 'dead', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state
          AND (NEW.callback_url IS NOT NULL OR NEW.reply_to IS NOT NULL))
    EXECUTE FUNCTION conveyor_enqueue_callback();
