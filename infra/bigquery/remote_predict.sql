-- BigQuery calls the predict function as a remote function (estate/serving/remote.py).
-- The same as infra/bigquery.tf (enable_bigquery_remote_function = true), for projects
-- that manage BigQuery by hand. Replace PROJECT, REGION, the dataset and the URL
-- (terraform output function_urls), then run the three steps in order.

-- 1. The connection (once). Its service account calls predict with an identity token:
--      bq mk --connection --location=US --project_id=PROJECT \
--        --connection_type=CLOUD_RESOURCE estate-predict
--      SA=$(bq show --format=json --connection PROJECT.us.estate-predict \
--        | python3 -c 'import json,sys; print(json.load(sys.stdin)["cloudResource"]["serviceAccountId"])')
--      gcloud run services add-iam-policy-binding estate-predict --region=REGION \
--        --member="serviceAccount:$SA" --role=roles/run.invoker

-- 2. The function. One JSON argument (the row) in, JSON out:
--      {"price": 212345.6, "interval": {"lower": ..., "upper": ..., "level": 0.9},
--       "warnings": [...], "version": "..."}
--    or, for a row the model cannot take, {"error": {"detail": ..., "errors": [...]}}.
--    max_batching_rows: rows per HTTP request; predict takes at most
--    ESTATE_MAX_INSTANCES (5000) and 8 MB per request. 1000 full Ames rows are ~1.6 MB.
--    user_defined_context: {"model_version": "..."} pins a served version; leave it
--    out to follow the serving pointer (champion, or canary by requestId).
CREATE OR REPLACE FUNCTION `PROJECT.estate.predict_price`(row JSON)
RETURNS JSON
REMOTE WITH CONNECTION `PROJECT.us.estate-predict`
OPTIONS (
  endpoint = 'https://REGION-PROJECT.cloudfunctions.net/estate-predict',
  max_batching_rows = 1000
  -- , user_defined_context = [("model_version", "20260101T000000Z-abcdef")]
);

-- 3. Score a table: TO_JSON(t) sends every column; columns the model does not read
--    (ids, the label) are ignored, missing ones are imputed and named in "warnings".
CREATE OR REPLACE TABLE `PROJECT.estate.houses_scored` AS
WITH scored AS (
  SELECT t.PID, `PROJECT.estate.predict_price`(TO_JSON(t)) AS r
  FROM `PROJECT.estate.houses` AS t
)
SELECT
  PID,
  FLOAT64(r.price) AS price,
  FLOAT64(r.interval.lower) AS lower,
  FLOAT64(r.interval.upper) AS upper,
  JSON_VALUE(r.error.detail) AS error,
  JSON_VALUE(r.version) AS version
FROM scored;

-- Rows the model refused (their reply holds an error instead of a price):
--   SELECT PID, error FROM `PROJECT.estate.houses_scored` WHERE error IS NOT NULL;
