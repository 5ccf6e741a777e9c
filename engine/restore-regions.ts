/**
 * Where a restore point may go. A backup stays in the geography its VM ran in
 * (data residency: a European customer's disks are not restored in the United
 * States), so a restore to another region is allowed within the same
 * geography only. Regions are Azure's names (westeurope), compared without
 * spaces or case.
 */
import { badInput } from '../core/errors.ts';

const GEOGRAPHIES: Record<string, string[]> = {
  Europe: [
    'westeurope',
    'northeurope',
    'francecentral',
    'francesouth',
    'germanywestcentral',
    'germanynorth',
    'swedencentral',
    'swedensouth',
    'norwayeast',
    'norwaywest',
    'switzerlandnorth',
    'switzerlandwest',
    'italynorth',
    'polandcentral',
    'spaincentral',
    'uksouth',
    'ukwest',
  ],
  'United States': [
    'eastus',
    'eastus2',
    'centralus',
    'northcentralus',
    'southcentralus',
    'westcentralus',
    'westus',
    'westus2',
    'westus3',
  ],
  Canada: ['canadacentral', 'canadaeast'],
  'Asia Pacific': ['eastasia', 'southeastasia'],
  Australia: ['australiaeast', 'australiasoutheast', 'australiacentral'],
  Japan: ['japaneast', 'japanwest'],
  India: ['centralindia', 'southindia', 'westindia'],
  Brazil: ['brazilsouth'],
};

/** Every region ACBA knows, lower case. */
export const KNOWN_REGIONS: ReadonlySet<string> = new Set(Object.values(GEOGRAPHIES).flat());

/** Azure's name of a region in the form ACBA compares: no spaces, lower case. */
export function normaliseRegion(region: string): string {
  return region.replace(/\s+/g, '').toLowerCase();
}

/** The geography of a region; undefined for a region ACBA does not know. */
export function geographyOf(region: string): string | undefined {
  const name = normaliseRegion(region);
  return Object.keys(GEOGRAPHIES).find((geo) => GEOGRAPHIES[geo]!.includes(name));
}

/** Throws bad_input unless a restore point taken in `source` may be restored in `target`. */
export function checkRestoreRegion(restorePointId: string, source: string, target: string): void {
  if (normaliseRegion(source) === normaliseRegion(target)) return;
  const from = geographyOf(source);
  const to = geographyOf(target);
  if (!to)
    throw badInput(
      `Region ${target} is not an Azure region ACBA restores to. Choose one of ${[...KNOWN_REGIONS].join(', ')}.`,
    );
  if (from !== to) {
    const allowed = from ? GEOGRAPHIES[from]!.join(', ') : normaliseRegion(source);
    throw badInput(
      `Restore point ${restorePointId} was taken in ${source} and stays in ${from ?? 'that region'}; it cannot go to ${target}. Choose one of ${allowed}.`,
    );
  }
}
