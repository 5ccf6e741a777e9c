/**
 * The staging container: where Azure SQL writes a database's BACPAC export
 * (and reads one to import), in the provider's own storage account next to
 * the repository, never in the customer's subscription. Blobs there are
 * plain BACPACs, so each lives only as long as one backup or restore: the
 * engine deletes it when done, also on failure.
 *
 * Azure SQL reaches a staging blob through a SAS scoped to that one blob and
 * valid for a limited time, signed with the storage account key from the
 * repository's connection string. The SAS is a secret: it goes to Azure and
 * nowhere else (no logs, no audit details).
 */
import {
  BlobSASPermissions,
  BlobServiceClient,
  type BlockBlobClient,
  type ContainerClient,
} from '@azure/storage-blob';
import { unavailable } from '../core/errors.ts';

export interface StagingOptions {
  /** Connection string of the provider's storage account (the repository's). */
  connectionString: string;
  /** Container name, created when missing. */
  container: string;
}

/** What Azure SQL's export and import need to reach a staging blob. */
export interface StagingAccess {
  storageUri: string;
  storageKeyType: 'SharedAccessKey';
  /** The SAS token, starting with '?', as Azure SQL expects it. */
  storageKey: string;
}

export class SqlStaging {
  private ready: Promise<void> | undefined;
  readonly container: ContainerClient;

  constructor(options: StagingOptions) {
    this.container = BlobServiceClient.fromConnectionString(
      options.connectionString,
    ).getContainerClient(options.container);
  }

  /** The staging blob for one backup or restore; the container is created on first use. */
  async blob(name: string): Promise<BlockBlobClient> {
    this.ready ??= this.container
      .createIfNotExists({ abortSignal: AbortSignal.timeout(15_000) })
      .then(() => undefined)
      .catch((error) => {
        this.ready = undefined;
        throw unavailable(
          `The SQL staging container ${this.container.containerName} cannot be created (${(error as Error).message}). Check ACBA_SQL_STAGING_CONTAINER and that the storage account answers.`,
        );
      });
    await this.ready;
    return this.container.getBlockBlobClient(name);
  }

  /** A SAS for one blob: `write` for an export to create it, read-only for an import. */
  async access(
    blob: BlockBlobClient,
    mode: 'write' | 'read',
    minutes: number,
  ): Promise<StagingAccess> {
    let url: string;
    try {
      url = await blob.generateSasUrl({
        permissions: BlobSASPermissions.parse(mode === 'write' ? 'rcw' : 'r'),
        startsOn: new Date(Date.now() - 5 * 60_000),
        expiresOn: new Date(Date.now() + minutes * 60_000),
      });
    } catch (error) {
      throw unavailable(
        `A SAS for the SQL staging container ${this.container.containerName} cannot be signed (${(error as Error).message}). Give ACBA_REPOSITORY_CONNECTION_STRING with the storage account's key.`,
      );
    }
    const sas = new URL(url).search;
    return { storageUri: blob.url, storageKeyType: 'SharedAccessKey', storageKey: sas };
  }
}
