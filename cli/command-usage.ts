/**
 * Usage texts of the commands whose files keep none of their own, so that
 * `acba <command> --help` answers for every command (see ./main.ts).
 */

export const serveUsage = `Usage:
  acba serve
      Starts the bot endpoint, portal, health, scheduler and a worker on PORT (default 3978),
      with data under DATA_DIR (default ./data); DATABASE_URL selects a PostgreSQL server.
  acba web
      The same without a worker: serves HTTP and runs the scheduler, takes no jobs.
  acba worker
      Only takes jobs (backups, restores) from the queue, with /healthz on PORT.`;

export const auditUsage = `Usage:
  acba audit verify [--json] [--file EXPORT] [--anchors DIR | --no-anchors]
      Verifies the audit log's hash chain (or an export file, with no database); exit code 1
      naming the first broken entry.
  acba audit export --format csv|json [--out FILE]
      The audit log with everything needed to verify it offline.
  acba audit anchor
      Writes the chain head to the repository container, create-only.
  acba audit role-sql ROLE
      The grants for the application's PostgreSQL role.`;

export const repositoryUsage = `Usage:
  acba repository check [--read-data] [--json]
      Checks that every restore point's blocks are present (and readable with --read-data);
      exit code 1 naming damaged restore points.
  acba repository prune [--json]
      Applies retention now: removes expired restore points and the packs no one references.`;

export const snapshotUsage = `Usage:
  acba snapshot create ITEM [--json]
      Takes a manual snapshot of every disk of a VM in a policy (by VM name or item id).
  acba snapshot list [ITEM] [--json]
      Manual snapshots, newest first.
  acba snapshot delete ID
      Deletes a manual snapshot by its restore point id.
  In the sandbox, create and delete need a running "acba serve".`;

export const sandboxUsage = `Usage:
  acba sandbox add-vm --name NAME --disk FILE [--disk FILE2] [--os Linux|Windows] [--json]
      Adds a VM whose disks are raw or fixed VHD image files to the built-in sandbox.`;
