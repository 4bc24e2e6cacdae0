import { TOPOLOGIES } from '../../../../test/harness/redis.ts';
import { sessionContract } from './session-contract.ts';

for (const topology of TOPOLOGIES) sessionContract(topology);
