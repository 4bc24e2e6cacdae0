import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { objectStoreContract } from './object-store-contract.ts';

objectStoreContract(
  'filesystem',
  async () => new FsObjectStore(await mkdtemp(path.join(os.tmpdir(), 'warden-fs-store-'))),
);
