-- One PostgreSQL server, one database per store. Runs once, when the data volume is first created
-- (mounted into /docker-entrypoint-initdb.d by infra/compose.yaml).
CREATE DATABASE mlflow;
CREATE DATABASE optuna;
CREATE DATABASE prefect;
