/**
 * The `acba` command line: `serve`, `web`, `worker`, `audit verify`, `audit export`.
 * Exit code 0 on success; otherwise non-zero with a one-line reason on stderr.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config.ts';
import { isAcbaError } from '../core/errors.ts';
import { auditCommand } from './audit-command.ts';
import { exportCommand } from './export-command.ts';
import { licenceCommand } from './licence-command.ts';
import { policyCommand } from './policy-command.ts';
import { repositoryCommand } from './repository-command.ts';
import { sandboxCommand } from './sandbox-command.ts';
import { serveCommand } from './serve-command.ts';
import { snapshotCommand } from './snapshot-command.ts';
import { usageCommand } from './usage-command.ts';

const usage = `Usage: acba <command> [options]

Commands:
  serve                      Start the bot endpoint, portal, scheduler and a worker on PORT (default 3978)
  web                        Like serve, but take no jobs: workers on this or other machines run them
  worker                     Only take jobs from the queue (backups, restores); /healthz on PORT
  audit verify [--json]      Verify the audit log's hash chain; exit 1 at the first broken link
  audit export --format csv|json [--out FILE]
                             Export the audit log with everything needed to verify it offline
  policy apply FILE | list [--json] | run NAME
                             Apply backup policies from a YAML file, list them, or run one now
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

Configuration comes from the environment; see .env.example.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(`${usage}\n`);
      return command === undefined ? 1 : 0;
    }
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
