/**
 * `acba sandbox add-vm --name NAME --disk FILE [--disk FILE2] [--os Linux|Windows]`:
 * adds a VM whose disks are copies of raw or fixed-VHD image files to the
 * built-in sandbox under DATA_DIR. A running `acba serve` lists it at once;
 * its next backup's inventory sync picks it up.
 */
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { badInput } from '../core/errors.ts';
import { addVm } from '../sandbox/added-vms.ts';

export async function sandboxCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'add-vm')
    throw badInput(
      `unknown sandbox command "${sub ?? ''}"; use "acba sandbox add-vm --name NAME --disk FILE [--disk FILE2] [--os Linux|Windows]".`,
    );
  const { values } = parseArgs({
    args: rest,
    options: {
      name: { type: 'string' },
      disk: { type: 'string', multiple: true },
      os: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (!values.name)
    throw badInput('--name is missing; give the new VM a name, e.g. --name lab-01.');
  if (!values.disk?.length)
    throw badInput('--disk is missing; give at least one raw or fixed VHD image file.');
  const os = values.os ?? 'Linux';
  if (os !== 'Linux' && os !== 'Windows')
    throw badInput(`--os must be Linux or Windows, not "${os}".`);

  const vm = await addVm(config.dataDir, { name: values.name, disks: values.disk, osType: os });
  if (values.json) process.stdout.write(`${JSON.stringify(vm)}\n`);
  else
    process.stdout.write(
      `Added ${vm.osType} VM ${vm.name} with ${vm.disks.length} disk(s) to the sandbox in ${vm.resourceGroup}; the next backup picks it up.\n`,
    );
  return 0;
}
