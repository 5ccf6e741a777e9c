/**
 * Storage accounts holding unmanaged disks: each seeded VM with `storage`
 * keeps its disks as VHD page blobs (a fixed VHD: the raw disk, then the
 * footer) in that account's container, and clients take blob snapshots of
 * them.
 *
 * A blob is a file under dataDir/sandbox/disks/vhds, made on first start (the
 * OS disk from its seed image, data disks blank); a snapshot is a copy taken
 * at creation (a reflink where the file system offers one), listed in
 * dataDir/sandbox/blob-snapshots.json so that a restarted sandbox still has
 * the snapshots an incremental backup chain refers to. Blobs are served at
 * `{baseUrl}/{account}/{container}/{blob}` (path-style, as storage emulators
 * address accounts); snapshots are known by their time, as in Azure.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ImageName } from './disk-images.ts';
import { copyReflink } from './resources.ts';
import type { SeedVirtualMachine } from './seed.ts';
import { fixedVhdFooter, VHD_FOOTER_BYTES } from './vhd-footer.ts';

export interface VhdBlob {
  account: string;
  container: string;
  name: string;
  /** The subscription of the storage account. */
  subscriptionId: string;
  file: string;
  /** The blob's length: the disk and its footer. */
  sizeBytes: number;
  createdOn: string;
}

export interface BlobSnapshot {
  account: string;
  container: string;
  name: string;
  /** The snapshot's time, e.g. 2026-12-03T10:11:12.1234567Z; its id within the blob. */
  snapshot: string;
  file: string;
  sizeBytes: number;
  metadata: Record<string, string>;
}

const key = (account: string, container: string, name: string) => `${account}/${container}/${name}`;

export class VhdStore {
  private readonly blobs = new Map<string, VhdBlob>();
  private readonly snapshots = new Map<string, BlobSnapshot[]>();
  private saveQueue: Promise<void> = Promise.resolve();
  private lastSnapshotTime = '';

  private constructor(
    private readonly baseUrl: string,
    private readonly dir: string,
    private readonly stateFile: string,
  ) {}

  /** Loads the VHD blobs of the VMs on unmanaged disks, making the missing ones, and their snapshots. */
  static async open(
    baseUrl: string,
    stateDir: string,
    virtualMachines: SeedVirtualMachine[],
    images: Record<ImageName, string>,
  ): Promise<VhdStore> {
    const dir = path.join(stateDir, 'disks', 'vhds');
    const store = new VhdStore(baseUrl, dir, path.join(stateDir, 'blob-snapshots.json'));
    for (const vm of virtualMachines) {
      if (!vm.storage) continue;
      const { account, container } = vm.storage;
      const os = vm.osDisk.image;
      await store.ensureBlob(vm, account, container, `${vm.osDisk.name}.vhd`, (file) =>
        os ? copyReflink(images[os], file) : Promise.reject(new Error(`${vm.name} has no image.`)),
      );
      for (const data of vm.dataDisks ?? [])
        await store.ensureBlob(vm, account, container, `${data.name}.vhd`, (file) =>
          fs.writeFile(file, '').then(() => fs.truncate(file, data.sizeBytes ?? 0)),
        );
    }
    await store.loadSnapshots();
    return store;
  }

  /** The URL of a VM disk's VHD (vhd.uri); undefined when the VM has managed disks. */
  vhdUri(vm: SeedVirtualMachine, diskName: string): string | undefined {
    if (!vm.storage) return undefined;
    return `${this.baseUrl}/${vm.storage.account}/${vm.storage.container}/${diskName}.vhd`;
  }

  hasAccount(account: string): boolean {
    return [...this.blobs.values()].some((blob) => blob.account === account);
  }

  getBlob(account: string, container: string, name: string): VhdBlob | undefined {
    return this.blobs.get(key(account, container, name));
  }

  /** The blob a VHD URL names; undefined for another host or an unknown blob. */
  blobAt(url: string): VhdBlob | undefined {
    const parsed = new URL(url);
    if (parsed.origin !== new URL(this.baseUrl).origin) return undefined;
    const [, account = '', container = '', name = ''] = decodeURIComponent(parsed.pathname).split(
      '/',
    );
    return this.getBlob(account, container, name);
  }

  /** The file behind a VHD URL, or behind one of its snapshots with `?snapshot=`. */
  fileAt(url: string): string | undefined {
    const blob = this.blobAt(url);
    const snapshot = new URL(url).searchParams.get('snapshot');
    if (!blob || !snapshot) return blob?.file;
    return this.getSnapshot(blob, snapshot)?.file;
  }

  /** The blob's snapshots, oldest first. */
  snapshotsOf(blob: VhdBlob): BlobSnapshot[] {
    return [...(this.snapshots.get(key(blob.account, blob.container, blob.name)) ?? [])];
  }

  getSnapshot(blob: VhdBlob, snapshot: string): BlobSnapshot | undefined {
    return this.snapshotsOf(blob).find((s) => s.snapshot === snapshot);
  }

  /** Copies the blob as it is now into a new snapshot with the given metadata. */
  async createSnapshot(blob: VhdBlob, metadata: Record<string, string>): Promise<BlobSnapshot> {
    const snapshot: BlobSnapshot = {
      account: blob.account,
      container: blob.container,
      name: blob.name,
      snapshot: this.nextSnapshotTime(),
      file: path.join(this.dir, 'snapshots', `${blob.name}-${randomUUID()}`),
      sizeBytes: blob.sizeBytes,
      metadata,
    };
    await fs.mkdir(path.dirname(snapshot.file), { recursive: true });
    await copyReflink(blob.file, snapshot.file);
    const list = this.snapshots.get(key(blob.account, blob.container, blob.name)) ?? [];
    list.push(snapshot);
    this.snapshots.set(key(blob.account, blob.container, blob.name), list);
    await this.saveSnapshots();
    return snapshot;
  }

  async deleteSnapshot(snapshot: BlobSnapshot): Promise<void> {
    const list = this.snapshots.get(key(snapshot.account, snapshot.container, snapshot.name)) ?? [];
    this.snapshots.set(
      key(snapshot.account, snapshot.container, snapshot.name),
      list.filter((s) => s.snapshot !== snapshot.snapshot),
    );
    await this.saveSnapshots();
    await fs.rm(snapshot.file, { force: true });
  }

  /** Writes bytes into a VHD's disk (never its footer), as the VM would; snapshots keep their content. */
  async writeDisk(url: string, offset: number, data: Buffer): Promise<void> {
    const blob = this.blobAt(url);
    if (!blob) throw new Error(`No VHD blob at ${url} in the sandbox.`);
    if (offset < 0 || offset + data.length > blob.sizeBytes - VHD_FOOTER_BYTES)
      throw new Error(`Writing ${data.length} bytes at ${offset} goes past the disk in ${url}.`);
    const handle = await fs.open(blob.file, 'r+');
    try {
      await handle.write(data, 0, data.length, offset);
    } finally {
      await handle.close();
    }
  }

  private async ensureBlob(
    vm: SeedVirtualMachine,
    account: string,
    container: string,
    name: string,
    make: (file: string) => Promise<unknown>,
  ): Promise<void> {
    const file = path.join(this.dir, account, container, name);
    const exists = await fs.stat(file).catch(() => undefined);
    if (!exists) {
      await fs.mkdir(path.dirname(file), { recursive: true });
      const temporary = `${file}.${process.pid}.tmp`;
      await make(temporary);
      const { size } = await fs.stat(temporary);
      await fs.appendFile(temporary, fixedVhdFooter(size, new Date(vm.timeCreated)));
      await fs.rename(temporary, file);
    }
    const { size } = await fs.stat(file);
    this.blobs.set(key(account, container, name), {
      account,
      container,
      name,
      subscriptionId: vm.subscriptionId,
      file,
      sizeBytes: size,
      createdOn: vm.timeCreated,
    });
  }

  /** Azure's snapshot time has seven decimals; later snapshots always get a later time. */
  private nextSnapshotTime(): string {
    let time = new Date().toISOString().replace(/Z$/, '0000Z');
    if (time <= this.lastSnapshotTime) {
      const ticks = BigInt(this.lastSnapshotTime.slice(20, 27)) + 1n;
      time = `${this.lastSnapshotTime.slice(0, 20)}${String(ticks).padStart(7, '0')}Z`;
    }
    this.lastSnapshotTime = time;
    return time;
  }

  private async loadSnapshots(): Promise<void> {
    let saved: BlobSnapshot[];
    try {
      saved = JSON.parse(await fs.readFile(this.stateFile, 'utf8')) as BlobSnapshot[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const snapshot of saved) {
      const blob = this.getBlob(snapshot.account, snapshot.container, snapshot.name);
      const exists = await fs.access(snapshot.file).then(
        () => true,
        () => false,
      );
      if (!blob || !exists) continue;
      const k = key(blob.account, blob.container, blob.name);
      this.snapshots.set(k, [...(this.snapshots.get(k) ?? []), snapshot]);
      if (snapshot.snapshot > this.lastSnapshotTime) this.lastSnapshotTime = snapshot.snapshot;
    }
  }

  private saveSnapshots(): Promise<void> {
    const next = this.saveQueue.then(async () => {
      const temporary = `${this.stateFile}.${process.pid}.tmp`;
      const all = [...this.snapshots.values()].flat();
      await fs.writeFile(temporary, JSON.stringify(all, null, 2));
      await fs.rename(temporary, this.stateFile);
    });
    this.saveQueue = next.catch(() => undefined);
    return next;
  }
}
