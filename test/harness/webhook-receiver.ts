import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a webhook receiver got. */
export interface ReceivedRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: Record<string, unknown>;
  /** The status it was answered with (only 2xx ones count as delivered). */
  answered: number;
}

/**
 * A real HTTP receiver on a loopback port, for notification tests. `failWith(503)` makes it
 * answer an error; `down()` closes the port (connection refused) and `up()` listens on the same
 * port again. `accepted()` is what a receiver would have processed: the 2xx-answered requests.
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  private server: http.Server | undefined;
  private port = 0;
  private failure: number | undefined;

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  accepted(path?: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.answered < 300 && (path === undefined || r.path === path));
  }

  failWith(status: number | undefined): void {
    this.failure = status;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const answered = this.failure ?? 200;
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = {};
        }
        this.requests.push({ path: request.url ?? '', headers: request.headers, text, body, answered });
        response
          .writeHead(answered, { 'content-type': 'text/plain' })
          .end(answered < 300 ? 'ok' : 'try later');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
