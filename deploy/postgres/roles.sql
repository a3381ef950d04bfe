-- plan2flow project memory on PostgreSQL: the superuser's one-time setup (docs/memory.md).
--
--   psql -h HOST -U postgres -v ON_ERROR_STOP=1 -f deploy/postgres/roles.sql \
--        [-v database=plan2flow] [-v migrator=p2f_migrator] [-v app=p2f_app] \
--        [-v migrator_password=...] [-v app_password=...]
--
-- Two roles, neither a superuser nor able to bypass row-level security:
--   migrator  owns the database, its public schema and (through `plan2flow db upgrade`) every
--             table; row-level security is FORCEd on it too, so it sees no tenant's rows
--             unless it binds a tenant.
--   app       what plan2flow connects as (PLAN2FLOW_DATABASE_URL): owns nothing, may not create
--             anything, inherits nothing; the migrations grant it the rows it may touch.
-- Without passwords here, set them afterwards (`\password p2f_app`) and use scram-sha-256
-- in pg_hba.conf.

\if :{?database}
\else
  \set database plan2flow
\endif
\if :{?migrator}
\else
  \set migrator p2f_migrator
\endif
\if :{?app}
\else
  \set app p2f_app
\endif

-- Roles that exist already are kept and brought to these attributes: the file may run again,
-- for instance to set up a second database for the same roles.
SELECT format('CREATE ROLE %I LOGIN', :'migrator')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'migrator') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
ALTER ROLE :"migrator" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
\if :{?migrator_password}
  ALTER ROLE :"migrator" PASSWORD :'migrator_password';
\endif
\if :{?app_password}
  ALTER ROLE :"app" PASSWORD :'app_password';
\endif

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'migrator')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
ALTER DATABASE :"database" OWNER TO :"migrator";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"migrator", :"app";

\connect :"database"
-- The schema belongs to the migrator; the application may use it, never create in it.
-- No default privileges: the migrations grant per table (default privileges would also give
-- the application DML on alembic_version).
ALTER SCHEMA public OWNER TO :"migrator";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
