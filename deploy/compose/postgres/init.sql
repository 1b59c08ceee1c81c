-- Runs once, when the compose PostgreSQL volume is first created.
-- The two roles of README "Tenancy, twice": the owner runs migrations and owns every
-- table; the app role (API and workers) is not a superuser, cannot bypass row-level
-- security and owns nothing, so `tenantry serve` accepts it. Local passwords only.
CREATE ROLE tenantry_owner LOGIN PASSWORD 'tenantry_owner' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE tenantry_app LOGIN PASSWORD 'tenantry_app' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
CREATE DATABASE tenantry OWNER tenantry_owner;
-- `tenantry migrate` grants the app role its table privileges after every migration.
