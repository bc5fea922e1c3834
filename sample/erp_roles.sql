-- Roles of the sample ERP database. Roles belong to the cluster, not to a database, so
-- they live here and not in erp_schema.sql: pg_dump of the database leaves them out and
-- pg_dumpall --globals-only carries them. Idempotent: every database made from the sample
-- in one cluster shares these roles, so running this twice must change nothing.
-- No role gets a password: its SCRAM hash has a random salt and would make two dumps of
-- the same sample differ.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erp_propietario') THEN
        CREATE ROLE erp_propietario NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erp_lectura') THEN
        CREATE ROLE erp_lectura NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erp_app') THEN
        CREATE ROLE erp_app LOGIN CONNECTION LIMIT 50;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erp_contabilidad') THEN
        CREATE ROLE erp_contabilidad LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erp_backup') THEN
        CREATE ROLE erp_backup LOGIN;
    END IF;
    -- pg_read_all_data (PostgreSQL 14+) is what a least-privilege backup role needs.
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pg_read_all_data') THEN
        GRANT pg_read_all_data TO erp_backup;
    END IF;
END
$roles$;

-- Re-granting an existing membership is a no-op (with a notice), so these stay idempotent.
GRANT erp_lectura TO erp_contabilidad;
GRANT erp_lectura TO erp_app;

COMMENT ON ROLE erp_propietario IS 'Dueño de los esquemas y tablas del ERP (sin login)';
COMMENT ON ROLE erp_lectura IS 'Consulta de todos los datos del ERP';
COMMENT ON ROLE erp_app IS 'Aplicación ERP: lectura y escritura';
COMMENT ON ROLE erp_contabilidad IS 'Departamento de contabilidad';
COMMENT ON ROLE erp_backup IS 'Copias de seguridad (respaldo)';
