import { TOPOLOGIES } from '../../../../test/harness/redis.ts';
import { rateLimitContract } from './ratelimit-contract.ts';

for (const topology of TOPOLOGIES) rateLimitContract(topology);
