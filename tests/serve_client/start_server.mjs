// Starts `g4 serve` on a free loopback port for the Node tests (openai_client.mjs, ../web_chat/chat_page.mjs);
// resolves once /health says 200, with the base URL and the server's log so far.
import { spawn } from 'node:child_process';

export async function startServer(g4, args) {
  const proc = spawn(g4, ['serve', '--port', '0', '--no-warmup', '-t', '2', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 120000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`g4 serve exited early:\n${log}`);
    const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) {
      const base = `http://127.0.0.1:${m[1]}`;
      const health = await fetch(`${base}/health`).catch(() => null);
      if (health && health.status === 200) return { proc, base, log: () => log };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill('SIGKILL');
  throw new Error(`g4 serve did not become healthy:\n${log}`);
}
