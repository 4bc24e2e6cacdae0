// Runs the test S3-compatible server (s3rver, filesystem-backed) in its own process so the
// harness can stop it by PID. Usage: node s3-server.mjs <directory> <port>. Prints "ready" once
// it listens on 127.0.0.1. Signatures are not compared: s3rver computes SigV4 for the SDK v3
// requests differently (the SDK signs headers s3rver does not canonicalize the same way).
import S3rver from '@20minutes/s3rver';

const [directory, port] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: true,
  allowMismatchedSignatures: true,
});
await server.run();
process.stdout.write('ready\n');
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
