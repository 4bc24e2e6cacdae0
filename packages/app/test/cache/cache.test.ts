import { TOPOLOGIES } from '../../../../test/harness/redis.ts';
import { cacheContract } from './cache-contract.ts';

for (const topology of TOPOLOGIES) cacheContract(topology);
