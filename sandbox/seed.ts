/**
 * Who and what lives in the sandbox tenant: the managed-service provider
 * (Fabrikam), its customer (Contoso) with three virtual machines (two on
 * managed disks, one older one on unmanaged VHD disks in a storage account)
 * and two SQL
 * servers in two regions (three user databases), the people who
 * request, approve, operate and audit, and the provider's app registration.
 *
 * Every identifier is derived from a fixed name through a name-based GUID, so
 * the same seed comes back on every start and on every machine without a
 * table of made-up GUIDs. Customer users are requesters only; approvers,
 * operators and auditors belong to the provider's tenant.
 */
import { createHash } from 'node:crypto';

export interface SandboxUser {
  objectId: string;
  tenantId: string;
  displayName: string;
  userPrincipalName: string;
  role: 'requester' | 'approver' | 'operator' | 'auditor';
}

export interface SandboxCustomer {
  id: string;
  name: string;
  tenantId: string;
  subscriptionId: string;
  resourceGroup: string;
  /** Further empty resource groups of the subscription, where restores may create resources. */
  otherResourceGroups: string[];
  location: string;
  vms: Array<{ name: string; resourceId: string; osType: 'Linux' | 'Windows' }>;
  /** Logical SQL servers with the SQL login that export and import use. */
  sqlServers: Array<{
    name: string;
    resourceId: string;
    location: string;
    administratorLogin: string;
    administratorLoginPassword: string;
  }>;
  /** User databases (master excluded), named `server/database` as ACBA names them. */
  sqlDatabases: Array<{ name: string; resourceId: string; location: string }>;
}

export interface SandboxSeed {
  provider: { tenantId: string; name: string };
  customers: SandboxCustomer[];
  users: SandboxUser[];
}

/** The provider's app registration, the only client the identity stand-in knows. */
export interface SeedApplication {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** Object id of the app's service principal; the `oid` of its tokens. */
  objectId: string;
  displayName: string;
}

/** A VM as the compute stand-in describes it; its OS disk carries the named image. */
export interface SeedVirtualMachine {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  name: string;
  osType: 'Linux' | 'Windows';
  vmId: string;
  vmSize: string;
  computerName: string;
  adminUsername: string;
  imageReference: { publisher: string; offer: string; sku: string; version: string };
  osDisk: {
    name: string;
    uniqueId: string;
    /** The seed image copied in on first start; absent for VMs added from image files. */
    image?: 'web-01' | 'win-01';
    hyperVGeneration: 'V1' | 'V2';
    /** 'Attach' for VMs created through ARM from an existing disk; made from their image otherwise. */
    createOption?: 'FromImage' | 'Attach';
  };
  /** Azure tags on the VM; policies select VMs by them. */
  tags?: Record<string, string>;
  /** Data disks by LUN; a seeded one is blank, of sizeBytes (added VMs bring their own files). */
  dataDisks?: Array<{ name: string; lun: number; sizeBytes?: number }>;
  /** Unmanaged disks: the storage account and container holding the VM's VHD page blobs; absent for managed disks. */
  storage?: { account: string; container: string };
  timeCreated: string;
  /** 'deallocated' once stopped through ARM; running otherwise. */
  powerState?: 'running' | 'deallocated';
  /** The subnet of a VM created through ARM with its own network interface configuration. */
  subnetId?: string;
}

/** A logical SQL server and its user databases; each database's rows derive from its name. */
export interface SeedSqlServer {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  name: string;
  administratorLogin: string;
  administratorLoginPassword: string;
  databases: Array<{
    name: string;
    tags: Record<string, string>;
    /** One table of generated rows: its name, columns and row count. */
    table: { name: string; columns: string[]; rows: number };
  }>;
}

export interface SeedWorld {
  seed: SandboxSeed;
  application: SeedApplication;
  virtualMachines: SeedVirtualMachine[];
  sqlServers: SeedSqlServer[];
}

/** A GUID derived from a name (SHA-1, version-5 layout), stable across runs. */
export function stableGuid(name: string): string {
  const bytes = createHash('sha1').update(`acba-sandbox:${name}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function vmResourceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${name}`;
}

export function sqlServerResourceId(
  subscriptionId: string,
  resourceGroup: string,
  name: string,
): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Sql/servers/${name}`;
}

export function buildSeed(): SeedWorld {
  const providerTenantId = stableGuid('tenant:fabrikam');
  const contosoTenantId = stableGuid('tenant:contoso');
  const subscriptionId = stableGuid('subscription:contoso-production');
  const resourceGroup = 'rg-prod';
  const location = 'westeurope';

  const virtualMachines: SeedVirtualMachine[] = [
    {
      subscriptionId,
      resourceGroup,
      location,
      name: 'web-01',
      osType: 'Linux',
      vmId: stableGuid('vm:contoso:web-01'),
      vmSize: 'Standard_B2s',
      computerName: 'web-01',
      adminUsername: 'azureuser',
      imageReference: {
        publisher: 'Canonical',
        offer: '0001-com-ubuntu-server-jammy',
        sku: '22_04-lts-gen2',
        version: 'latest',
      },
      osDisk: osDisk('web-01', 'V2'),
      tags: { environment: 'production', owner: 'contoso-it', role: 'web' },
      timeCreated: '2025-03-11T08:42:17.5216934+00:00',
    },
    {
      subscriptionId,
      resourceGroup,
      location,
      name: 'win-01',
      osType: 'Windows',
      vmId: stableGuid('vm:contoso:win-01'),
      vmSize: 'Standard_D2s_v5',
      computerName: 'win-01',
      adminUsername: 'contosoadmin',
      imageReference: {
        publisher: 'MicrosoftWindowsServer',
        offer: 'WindowsServer',
        sku: '2022-datacenter-azure-edition',
        version: 'latest',
      },
      osDisk: osDisk('win-01', 'V1'),
      tags: { environment: 'production', owner: 'contoso-it', role: 'file-server' },
      timeCreated: '2025-03-11T09:05:51.0738211+00:00',
    },
    {
      subscriptionId,
      resourceGroup,
      location,
      name: 'legacy-01',
      osType: 'Windows',
      vmId: stableGuid('vm:contoso:legacy-01'),
      vmSize: 'Standard_A2_v2',
      computerName: 'legacy-01',
      adminUsername: 'contosoadmin',
      imageReference: {
        publisher: 'MicrosoftWindowsServer',
        offer: 'WindowsServer',
        sku: '2012-R2-Datacenter',
        version: 'latest',
      },
      // An older VM never converted to managed disks; its OS disk carries the Windows image.
      osDisk: {
        name: 'legacy-01-os',
        uniqueId: stableGuid('disk:legacy-01:os'),
        image: 'win-01',
        hyperVGeneration: 'V1',
      },
      dataDisks: [{ name: 'legacy-01-data-0', lun: 0, sizeBytes: 8 * 1024 * 1024 }],
      storage: { account: 'contosolegacyvhds', container: 'vhds' },
      tags: { environment: 'production', owner: 'contoso-it', role: 'legacy-app' },
      timeCreated: '2019-06-04T13:27:40.2871466+00:00',
    },
  ];

  const sqlLogin = (server: string) => ({
    administratorLogin: 'contosoadmin',
    // A sandbox-only password, stable across starts like the app secret.
    administratorLoginPassword: `Sbx!${createHash('sha256').update(`sql-login:${server}`).digest('base64url').slice(0, 20)}`,
  });
  const sqlServers: SeedSqlServer[] = [
    {
      subscriptionId,
      resourceGroup,
      location,
      name: 'sql-contoso-weu',
      ...sqlLogin('sql-contoso-weu'),
      databases: [
        {
          name: 'sales',
          tags: { environment: 'production', workload: 'sales' },
          table: {
            name: 'Orders',
            columns: ['OrderId', 'Customer', 'Amount', 'Note'],
            rows: 120000,
          },
        },
        {
          name: 'inventory',
          tags: { environment: 'production', workload: 'inventory' },
          table: { name: 'Products', columns: ['Sku', 'Title', 'Stock', 'Bin'], rows: 24000 },
        },
      ],
    },
    {
      subscriptionId,
      resourceGroup,
      location: 'northeurope',
      name: 'sql-contoso-neu',
      ...sqlLogin('sql-contoso-neu'),
      databases: [
        {
          name: 'hr',
          tags: { environment: 'production', workload: 'hr' },
          table: {
            name: 'Employees',
            columns: ['EmployeeId', 'Name', 'Team', 'Badge'],
            rows: 16000,
          },
        },
      ],
    },
  ];

  const contoso: SandboxCustomer = {
    id: 'contoso',
    name: 'Contoso',
    tenantId: contosoTenantId,
    subscriptionId,
    resourceGroup,
    otherResourceGroups: ['rg-restore'],
    location,
    vms: virtualMachines.map((vm) => ({
      name: vm.name,
      resourceId: vmResourceId(subscriptionId, resourceGroup, vm.name),
      osType: vm.osType,
    })),
    sqlServers: sqlServers.map((server) => ({
      name: server.name,
      resourceId: sqlServerResourceId(subscriptionId, resourceGroup, server.name),
      location: server.location,
      administratorLogin: server.administratorLogin,
      administratorLoginPassword: server.administratorLoginPassword,
    })),
    sqlDatabases: sqlServers.flatMap((server) =>
      server.databases.map((database) => ({
        name: `${server.name}/${database.name}`,
        resourceId: `${sqlServerResourceId(subscriptionId, resourceGroup, server.name)}/databases/${database.name}`,
        location: server.location,
      })),
    ),
  };

  const user = (
    tenantId: string,
    domain: string,
    displayName: string,
    role: SandboxUser['role'],
  ): SandboxUser => {
    const [first = '', last = ''] = displayName.split(' ');
    return {
      objectId: stableGuid(`user:${tenantId}:${displayName}`),
      tenantId,
      displayName,
      userPrincipalName: `${first}${last.charAt(0)}@${domain}`,
      role,
    };
  };

  const users: SandboxUser[] = [
    user(contosoTenantId, 'contoso.onmicrosoft.com', 'Alex Wilber', 'requester'),
    user(contosoTenantId, 'contoso.onmicrosoft.com', 'Megan Bowen', 'requester'),
    user(providerTenantId, 'fabrikamms.onmicrosoft.com', 'Adele Vance', 'approver'),
    user(providerTenantId, 'fabrikamms.onmicrosoft.com', 'Lee Gu', 'approver'),
    user(providerTenantId, 'fabrikamms.onmicrosoft.com', 'Nestor Wilke', 'operator'),
    user(providerTenantId, 'fabrikamms.onmicrosoft.com', 'Isaiah Langer', 'auditor'),
  ];

  const application: SeedApplication = {
    tenantId: providerTenantId,
    clientId: stableGuid('app:fabrikam:acba'),
    // A sandbox-only secret, stable so that a restarted sandbox keeps working with the same configuration.
    clientSecret: `sbx~${createHash('sha256').update('acba-sandbox:app-secret').digest('base64url').slice(0, 34)}`,
    objectId: stableGuid('service-principal:fabrikam:acba'),
    displayName: 'ACBA Backup (Fabrikam Managed Services)',
  };

  return {
    seed: {
      provider: { tenantId: providerTenantId, name: 'Fabrikam Managed Services' },
      customers: [contoso],
      users,
    },
    application,
    virtualMachines,
    sqlServers,
  };
}

function osDisk(
  vmName: 'web-01' | 'win-01',
  hyperVGeneration: 'V1' | 'V2',
): SeedVirtualMachine['osDisk'] {
  const suffix = createHash('sha256').update(`os-disk:${vmName}`).digest('hex').slice(0, 32);
  return {
    name: `${vmName}_OsDisk_1_${suffix}`,
    uniqueId: stableGuid(`disk:${vmName}:os`),
    image: vmName,
    hyperVGeneration,
  };
}
