import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { objectStoreContract } from './object-store-contract.ts';
import { tempDir } from '../harness/temp-dir.ts';

objectStoreContract('filesystem', async () => new FsObjectStore(await tempDir('fs-store')));
