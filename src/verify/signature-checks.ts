import {
  checkRecordSignature,
  signatureError,
  type TrustPolicy,
} from '../pipeline/signing/record-signature.ts';
import type { VerifyProblem } from './verify-report.ts';

/**
 * The `signature` problem for a record a reader with this trust set would refuse (unsigned, by
 * an unknown key, or not matching its signature), or undefined when it would accept it. No
 * trust set: signatures are not checked (the library default). An unsigned record accepted
 * under allowUnsigned is reported to the policy's `onUnsigned`, not as a problem.
 */
export function signatureProblem(
  trust: TrustPolicy | undefined,
  record: unknown,
  where: { object: string; systemId: string },
  breaks: string,
  backups?: string[],
): VerifyProblem | undefined {
  if (!trust) return undefined;
  const verdict = checkRecordSignature(record, where, trust.keys);
  if (verdict.status === 'unsigned' && trust.allowUnsigned) {
    trust.onUnsigned?.(where.object);
    return undefined;
  }
  const error = signatureError(verdict, where);
  if (!error) return undefined;
  return {
    kind: 'signature',
    object: where.object,
    message: error.message,
    breaks,
    ...(backups ? { backups } : {}),
    details: { code: error.code, ...error.details },
  };
}
