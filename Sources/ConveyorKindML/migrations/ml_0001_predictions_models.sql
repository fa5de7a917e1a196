-- Kinds ml.* (Sources/ConveyorKindML): their own tables, prefixed conveyor_ml_.

-- What the ML service predicted for an ad, and what happened (ml.record_prediction, ml.record_outcome).
-- status: predicted → running (outcomes so far) → completed (the final outcome).
CREATE TABLE conveyor_ml_predictions (
    prediction_id  text PRIMARY KEY CHECK (char_length(prediction_id) BETWEEN 1 AND 200),
    ad_id          text NOT NULL CHECK (char_length(ad_id) BETWEEN 1 AND 200),
    predicted_ctr  double precision NOT NULL CHECK (predicted_ctr >= 0 AND predicted_ctr <= 1),
    predicted_roas double precision,
    hook_type      text,
    template_id    text,
    features       jsonb NOT NULL DEFAULT '{}',
    model_version  integer,
    status         text NOT NULL DEFAULT 'predicted' CHECK (status IN ('predicted', 'running', 'completed')),
    impressions    bigint,
    clicks         bigint,
    conversions    bigint,
    spend          double precision,
    revenue        double precision,
    actual_ctr     double precision,
    actual_roas    double precision,
    ctr_error      double precision,
    roas_error     double precision,
    predicted_at   timestamptz NOT NULL,
    outcome_at     timestamptz,
    completed_at   timestamptz
);
CREATE INDEX conveyor_ml_predictions_ad_idx ON conveyor_ml_predictions (ad_id, predicted_at DESC);
CREATE INDEX conveyor_ml_predictions_completed_idx ON conveyor_ml_predictions (completed_at) WHERE status = 'completed';

-- Trained models: the artifact any service can score (README "The retraining loop"), its holdout
-- metrics, and which one is current (at most one).
CREATE TABLE conveyor_ml_models (
    version        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    algorithm      text NOT NULL,
    artifact       jsonb NOT NULL,
    samples        bigint NOT NULL,
    train_from     timestamptz,
    train_to       timestamptz,
    metrics        jsonb NOT NULL,
    trained_at     timestamptz NOT NULL,
    promoted_at    timestamptz,
    is_current     boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX conveyor_ml_models_current_idx ON conveyor_ml_models ((true)) WHERE is_current;

-- Every ml.retrain_check's status object, newest first on the dashboard and in `conveyor ml status`.
CREATE TABLE conveyor_ml_checks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid NOT NULL,
    status      text NOT NULL,
    reason      text,
    result      jsonb NOT NULL,
    checked_at  timestamptz NOT NULL
);
CREATE INDEX conveyor_ml_checks_recent_idx ON conveyor_ml_checks (checked_at DESC);
