/** Azure resource ids, e.g. /subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>. */
import { badInput } from '../core/errors.ts';

export interface ResourceIdParts {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export function parseResourceId(id: string): ResourceIdParts {
  const parts = id.split('/').filter((p) => p !== '');
  const lower = parts.map((p) => p.toLowerCase());
  const sub = lower.indexOf('subscriptions');
  const rg = lower.indexOf('resourcegroups');
  const name = parts.at(-1);
  if (sub < 0 || rg < 0 || !parts[sub + 1] || !parts[rg + 1] || !name) {
    throw badInput(
      `${id} is not an Azure resource id of the form /subscriptions/<id>/resourceGroups/<group>/providers/.../<name>.`,
    );
  }
  return { subscriptionId: parts[sub + 1]!, resourceGroup: parts[rg + 1]!, name };
}
