/**
 * The `acba` command line: the processes (`serve`, `web`, `worker`) and the
 * operators' and auditors' commands, each with `--help`.
 * Exit code 0 on success; otherwise non-zero with a one-line reason on stderr.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config.ts';
import { isAcbaError } from '../core/errors.ts';
import { auditCommand } from './audit-command.ts';
import { printUsage } from './command-line.ts';
import {
  auditUsage,
  repositoryUsage,
  sandboxUsage,
  serveUsage,
  snapshotUsage,
} from './command-usage.ts';
import { customersCommand, customersUsage } from './customers-command.ts';
import { exportCommand, exportUsage } from './export-command.ts';
import { jobsCommand, jobsUsage } from './jobs-command.ts';
import { licenceCommand, licenceUsage } from './licence-command.ts';
import { policyCommand, policyUsage } from './policy-command.ts';
import { repositoryCommand } from './repository-command.ts';
import { restorePointsCommand, restorePointsUsage } from './restore-points-command.ts';
import { sandboxCommand } from './sandbox-command.ts';
import { serveCommand } from './serve-command.ts';
import { snapshotCommand } from './snapshot-command.ts';
import { usageCommand, usageUsage } from './usage-command.ts';

const usage = `Usage: acba <command> [options]

Commands:
  serve                      Start the bot endpoint, portal, scheduler and a worker on PORT (default 3978)
  web                        Like serve, but take no jobs: workers on this or other machines run them
  worker                     Only take jobs from the queue (backups, restores); /healthz on PORT
  audit verify [--json]      Verify the audit log's hash chain; exit 1 at the first broken link
  audit export --format csv|json [--out FILE]
                             Export the audit log with everything needed to verify it offline
  customers list [--json]    Each customer: tenant, subscription, service model, items, stored bytes, licence
  jobs list [--customer ID] [--status running|succeeded|warning|failed] [--limit N] [--json]
                             Job sessions, newest first, with their outcome and bytes
  jobs show SESSION_ID [--json]
                             One job session with its tasks: status, attempts, bytes, throughput, error
  restore-points list [--customer ID] [--item NAME_OR_ID] [--limit N] [--json]
                             Restore points, newest first: item, type, created, expires, size, stored bytes
  policy apply FILE | list [--json] | run NAME [--wait] [--json]
                             Apply backup policies from a YAML file, list them, or run one now; --wait
                             follows the backups to their end (needs a running serve or worker)
  licence set CUSTOMER [--instances N] [--storage-tb X] [--tasks N] | show CUSTOMER [--json]
                             Set or show a customer's licensed instances, storage and concurrent tasks
  repository check [--read-data] [--json] | prune
                             Check every restore point's blocks (exit 1 on damage), or apply retention now
  snapshot create ITEM | list [ITEM] [--json] | delete ID
                             An operator's manual snapshots of a VM in a policy, kept until deleted
  export run REQUEST [--sas URL] | verify DIR [--json]
                             Write (or resume) an approved exit export; check a finished one's checksums
  usage report --month YYYY-MM [--customer ID] [--format csv|json|text]
                             Each customer's usage in a month, for invoices: instances, storage, tasks, egress
  sandbox add-vm --name NAME --disk FILE [--disk FILE2] [--os Linux|Windows]
                             Add a VM whose disks are raw or fixed VHD image files to the built-in sandbox

"acba <command> --help" describes a command. Configuration comes from the environment; see .env.example.`;

const commandUsage: Record<string, string> = {
  serve: serveUsage,
  web: serveUsage,
  worker: serveUsage,
  audit: auditUsage,
  customers: customersUsage,
  jobs: jobsUsage,
  'restore-points': restorePointsUsage,
  policy: policyUsage,
  licence: licenceUsage,
  repository: repositoryUsage,
  snapshot: snapshotUsage,
  sandbox: sandboxUsage,
  export: exportUsage,
  usage: usageUsage,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(`${usage}\n`);
      return command === undefined ? 1 : 0;
    }
    const help = commandUsage[command];
    // Anywhere after the command: "acba jobs list --help" asks too.
    if (help && (rest[0] === 'help' || rest.some((a) => a === '--help' || a === '-h')))
      return printUsage(help, true);
    const config = loadConfig();
    switch (command) {
      case 'serve':
        parseArgs({ args: rest, options: {} });
        return await serveCommand(config, 'all');
      case 'web':
      case 'worker':
        parseArgs({ args: rest, options: {} });
        return await serveCommand(config, command);
      case 'audit':
        return await auditCommand(config, rest);
      case 'customers':
        return await customersCommand(config, rest);
      case 'jobs':
        return await jobsCommand(config, rest);
      case 'restore-points':
        return await restorePointsCommand(config, rest);
      case 'licence':
        return await licenceCommand(config, rest);
      case 'policy':
        return await policyCommand(config, rest);
      case 'repository':
        return await repositoryCommand(config, rest);
      case 'snapshot':
        return await snapshotCommand(config, rest);
      case 'sandbox':
        return await sandboxCommand(config, rest);
      case 'export':
        return await exportCommand(config, rest);
      case 'usage':
        return await usageCommand(config, rest);
      default:
        process.stderr.write(
          `acba: unknown command "${command}". Run "acba --help" for the list of commands.\n`,
        );
        return 2;
    }
  } catch (error) {
    const message =
      isAcbaError(error) || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
        ? (error as Error).message
        : `unexpected failure: ${(error as Error).message}`;
    process.stderr.write(`acba: ${message.split('\n')[0]}\n`);
    return 1;
  }
}
