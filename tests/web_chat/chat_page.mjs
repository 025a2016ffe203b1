// g4 serve's chat page (GET /) in Debian's chromium, headless, driven through puppeteer-core (pinned in
// package.json, installed by tests/fetch_test_packages.sh; it downloads no browser). On the demo model behind
// --api-key: the page asks for the key once; a streamed answer equals the API's greedy answer fetched directly,
// with its usage under it; a second turn and a regenerated answer equal the API's answers to the same
// conversation; a reload finds the conversation; an export holds it; a long answer stopped mid-stream leaves every
// slot free; an edited last turn is answered anew; model output (a mocked stream, with thoughts) and a file name
// carrying <script> and <img onerror> stay text, and the page's policy blocks injected handlers; a server error
// reads as its message. On the multimodal reference checkpoint: a picked image (pasted and dropped ones too)
// rides in the request as its exact bytes and the answer equals the API's; a picked WAV keeps its bytes; a
// recording from chromium's fake microphone is sent as a WAV the server answers as the API does; a picked video
// (written by the ffmpeg program) rides as its exact bytes in a video_url part, answered as the API answers it.
// Saves a 1280x800 screenshot.
//
// usage: node chat_page.mjs G4_EXE TESTS_DATA_DIR SCREENSHOT.png
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startServer } from '../serve_client/start_server.mjs';

const [g4, data, screenshot] = process.argv.slice(2);
const KEY = 'page-test-key';
const tmp = mkdtempSync(join(tmpdir(), 'g4-web-chat-'));
let checks = 0;
const check = (cond, what) => {
  checks++;
  assert.ok(cond, what);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The API called directly (the independent truth the page's answers are compared with).
async function chatApi(base, messages, extra = {}) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model: 'x', messages, temperature: 0, ...extra }),
  });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return { text: j.choices[0].message.content, usage: j.usage };
}

async function busySlots(base) {
  const text = await (await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } })).text();
  const value = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))[1]);
  return value('g4_slots_busy') + value('g4_requests_queued');
}

// The page's state as it kept it, and what the transcript shows.
const stored = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('g4chat.conversation') || '[]'));
const shown = (page) => page.$$eval('#messages .msg', (ms) => ms.map((m) => ({ role: m.dataset.role, state: m.dataset.state,
  body: m.querySelector('.body').innerText, error: m.querySelector('.error')?.textContent ?? null })));

async function setSetting(page, id, value) {
  await page.$eval(`#${id}`, (e, v) => {
    e.value = v;
    e.dispatchEvent(new Event('input'));
  }, String(value));
}

async function sendPrompt(page, text) {
  await page.$eval('#prompt', (e) => (e.value = ''));
  await page.type('#prompt', text);
  await page.keyboard.press('Enter');
}

// Waits for the last message to be an answer that has finished (done, stopped or error).
async function answered(page, timeout = 300000) {
  await page.waitForFunction(() => {
    const m = document.querySelector('#messages .msg:last-child');
    return m && m.dataset.role === 'assistant' && m.dataset.state !== 'streaming' && !document.querySelector('#stop:not(:disabled)');
  }, { timeout, polling: 50 });
  return (await stored(page)).at(-1);
}

// Collects the chat requests the page sends (their JSON bodies).
function recordRequests(page) {
  const bodies = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/v1/chat/completions') && r.method() === 'POST') bodies.push(JSON.parse(r.postData()));
  });
  return bodies;
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 120000,  // starting the browser on a loaded 2-core machine
  defaultViewport: { width: 1280, height: 800 },
  // A fake microphone that needs no permission prompt; /tmp instead of a container's small /dev/shm; no sandbox
  // where the tests run as root (CI).
  args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', '--disable-dev-shm-usage',
         ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
});
const pageErrors = [];
async function newPage(base) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.setDefaultTimeout(120000);
  await page.goto(base);
  return page;
}

const servers = [];
try {
  // ---- The demo model, behind an API key.
  const demo = await startServer(g4, ['-m', `${data}/demo`, '-c', '1024', '--parallel', '2', '--api-key', KEY]);
  servers.push(demo);
  const page = await newPage(demo.base);
  const requests = recordRequests(page);
  check((await fetch(demo.base)).headers.get('content-type').startsWith('text/html'), 'GET / is the page, without a key');
  await page.waitForSelector('#key-dialog[open]');
  await page.type('#key-input', KEY);
  await page.click('#key-save');
  await page.waitForFunction(() => document.querySelector('#model').textContent === 'demo');
  check((await page.evaluate(() => localStorage.getItem('g4chat.apiKey'))) === KEY, 'the key is kept');

  await page.click('#settings-toggle');
  await setSetting(page, 'temperature', 0);
  await setSetting(page, 'max_tokens', 24);

  // A streamed answer equals the API's greedy answer; its usage is shown under it.
  const first = 'def add(a, b):';
  const expected1 = await chatApi(demo.base, [{ role: 'user', content: first }], { max_tokens: 24 });
  await sendPrompt(page, first);
  let reply = await answered(page);
  check(reply.state === 'done' && reply.text === expected1.text, `page ${JSON.stringify(reply.text)} != API ${JSON.stringify(expected1.text)}`);
  const body = requests.at(-1);
  check(body.stream === true && body.stream_options.include_usage === true && body.temperature === 0 && body.max_tokens === 24,
        `request: ${JSON.stringify(body)}`);
  check(reply.stats.prompt === expected1.usage.prompt_tokens && reply.stats.generated === expected1.usage.completion_tokens,
        `usage shown ${JSON.stringify(reply.stats)} vs API ${JSON.stringify(expected1.usage)}`);
  const statsLine = await page.$eval('#messages .msg:last-child .stats', (e) => e.textContent);
  check(new RegExp(`^${expected1.usage.prompt_tokens} prompt tokens.* · ${expected1.usage.completion_tokens} generated · [0-9.]+ tokens/s`).test(statsLine),
        `stats line: ${statsLine}`);
  // Rendered as text: the transcript shows the answer's words (Markdown may change the spacing only).
  const squash = (s) => s.replace(/\s+/g, '');
  check(squash((await shown(page)).at(-1).body) === squash(expected1.text), 'the rendered answer');

  // A second turn, then regenerate: each answer equals the API's for the same conversation.
  await setSetting(page, 'max_tokens', 16);
  const second = 'import os';
  const history = [{ role: 'user', content: first }, { role: 'assistant', content: expected1.text }, { role: 'user', content: second }];
  const expected2 = await chatApi(demo.base, history, { max_tokens: 16 });
  await sendPrompt(page, second);
  reply = await answered(page);
  check(reply.text === expected2.text, `second turn ${JSON.stringify(reply.text)} != ${JSON.stringify(expected2.text)}`);
  check(reply.stats.cached > 0, `the second turn reused the cache: ${JSON.stringify(reply.stats)}`);
  await page.click('#messages .msg:last-child .regenerate');
  reply = await answered(page);
  const conversation = await stored(page);
  check(conversation.length === 4 && reply.text === expected2.text, 'regenerate replaces the answer with the same greedy one');

  // A reload finds the conversation and the key (no second question).
  const before = await shown(page);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#model').textContent === 'demo');
  check(!(await page.$('#key-dialog[open]')), 'the key is asked for once');
  check(JSON.stringify(await shown(page)) === JSON.stringify(before), 'the transcript after a reload');

  // Export: a JSON file holding the conversation.
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: tmp });
  await page.click('#export');
  let exported = null;
  for (let i = 0; i < 100 && !exported; i++) {
    await sleep(100);
    const f = readdirSync(tmp).find((n) => n.endsWith('.json'));
    if (f) exported = JSON.parse(readFileSync(join(tmp, f), 'utf8'));
  }
  check(exported && JSON.stringify(exported.messages) === JSON.stringify(conversation), 'export holds the conversation');

  // Stop a long answer mid-stream (900 tokens when let run): the request is cancelled and the server stays healthy.
  await page.click('#new-chat');
  await setSetting(page, 'max_tokens', 900);
  await page.evaluate(() => {  // the answer's length at each change of the transcript: it grows while it streams
    window.lengths = [];
    new MutationObserver(() => window.lengths.push(document.querySelector('#messages .msg:last-child .body')?.innerText.length ?? 0))
      .observe(document.querySelector('#messages'), { childList: true, subtree: true });
  });
  await sendPrompt(page, 'class Stack:');
  await page.waitForFunction(() => new Set(window.lengths.filter((n) => n > 0)).size >= 3, { polling: 'mutation' });
  await page.click('#stop');
  reply = await answered(page, 30000);
  check(reply.state === 'stopped' && reply.text.length > 0, `stopped: ${JSON.stringify(reply)}`);
  check((await page.$eval('#messages .msg:last-child', (e) => e.innerText)).includes('stopped'), 'the answer says it was stopped');
  let busy = await busySlots(demo.base);
  for (let i = 0; i < 100 && busy; i++) await sleep(100), (busy = await busySlots(demo.base));
  check(busy === 0, 'every slot is free after the stop');
  check((await fetch(`${demo.base}/health`)).status === 200, 'healthy after the stop');

  // Edit the last user turn: back in the composer, dropped with its answer; the edited question is answered.
  await page.click('#messages .edit');  // offered on the last user turn only
  check((await page.$eval('#prompt', (e) => e.value)) === 'class Stack:', 'edit puts the turn back in the composer');
  check((await stored(page)).length === 0, 'edit drops the turn and its answer');
  await setSetting(page, 'max_tokens', 24);
  await sendPrompt(page, first);
  reply = await answered(page);
  check(reply.text === expected1.text, `edited turn ${JSON.stringify(reply.text)} != ${JSON.stringify(expected1.text)}`);

  // Model output with HTML renders as text (a mocked stream), and so does a file name.
  const hostile = ['<script>window.pwned = 1</script>\n\n', '<img src=x onerror="window.pwned = 2">', ' **bold** and [a](javascript:alert(1))\n',
                   '```html\n<b onmouseover="window.pwned = 3">code</b>\n```\n', '# Heading\n\n- one\n- two\n\n3. three\n\n[site](https://example.com/x)'];
  const thought = 'Thinking about <script>window.pwned = 5</script>';
  const frames = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { reasoning_content: thought }, finish_reason: null }] })}\n\n` + hostile.map((c) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: c }, finish_reason: null }] })}\n\n`).join('') +
    `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 4 } })}\n\ndata: [DONE]\n\n`;
  await page.setRequestInterception(true);
  const mock = (r) => r.url().endsWith('/v1/chat/completions') ? r.respond({ status: 200, contentType: 'text/event-stream', body: frames }) : r.continue();
  page.on('request', mock);
  if (await page.$('#settings[hidden]')) await page.click('#settings-toggle');  // closed again by the reload
  await page.click('#thinking');
  await sendPrompt(page, 'html please');
  reply = await answered(page);
  await page.click('#thinking');
  const mocked = requests.at(-1);
  check(mocked.chat_template_kwargs?.enable_thinking === true && !('tools' in mocked), `thinking on, tools off: ${JSON.stringify(mocked)}`);
  const thoughts = await page.$eval('#messages .msg:last-child details.thoughts', (d) => ({ open: d.open, text: d.querySelector('div').textContent }));
  check(!thoughts.open && thoughts.text === thought, `the thoughts, folded: ${JSON.stringify(thoughts)}`);
  page.off('request', mock);
  await page.setRequestInterception(false);
  check(reply.text === hostile.join(''), 'the mocked answer');
  const injected = await page.$$eval('#messages script, #messages img[onerror], #messages b, #messages a[href^="javascript"]', (n) => n.length);
  const text = (await shown(page)).at(-1).body;
  check(injected === 0 && text.includes('<script>window.pwned = 1</script>') && text.includes('<img src=x onerror="window.pwned = 2">') &&
        text.includes('<b onmouseover="window.pwned = 3">code</b>'), `model HTML stays text: ${injected} elements, ${JSON.stringify(text)}`);
  const markdown = await page.$eval('#messages .msg:last-child .body', (b) => [b.querySelector('strong').textContent, b.querySelector('h3').textContent,
    b.querySelectorAll('ul li').length, b.querySelector('ol').start, b.querySelector('pre code').textContent, b.querySelector('a').href, b.querySelector('a').rel]);
  check(JSON.stringify(markdown) === JSON.stringify(['bold', 'Heading', 2, 3, '<b onmouseover="window.pwned = 3">code</b>', 'https://example.com/x', 'noopener noreferrer']),
        `Markdown: ${JSON.stringify(markdown)}`);
  // Behind the escaping, the page's Content-Security-Policy: markup injected anyway runs no handler.
  await page.evaluate(() => document.body.insertAdjacentHTML('beforeend', '<img src="data:," onerror="window.pwned = 6" hidden>'));
  await sleep(300);
  check((await page.evaluate(() => window.pwned)) === undefined, 'the policy blocks inline handlers');
  await page.evaluate(() => document.querySelector('body > img[hidden]').remove());

  // Tools that are not JSON: a readable error, and nothing sent.
  await page.click('#tools_on');
  await setSetting(page, 'tools', '[{"type": "function"');
  const sent = requests.length;
  await sendPrompt(page, 'call something');
  reply = await answered(page);
  await page.click('#tools_on');
  check(reply.state === 'error' && /^Settings, Tools: not valid JSON/.test(reply.error) && requests.length === sent, `bad tools: ${JSON.stringify(reply)}`);

  // A picture on a model without vision: the server's 400 shows as its message; the file's name stays text.
  await page.click('#new-chat');
  const hostileName = join(tmp, '<img src=x onerror=window.pwned=4>.png');
  copyFileSync(`${data}/media/sample.png`, hostileName);
  await (await page.$('#attach')).uploadFile(hostileName);
  await page.waitForSelector('#pending .chip');
  await sendPrompt(page, 'What is this?');
  reply = await answered(page);
  const error = (await shown(page)).at(-1).error;
  check(reply.state === 'error' && /^Server error 400: .+ \(messages\[0\]\.content\[0\]\)$/.test(error), `error shown: ${error}`);
  check((await page.$eval('#messages .msg.user figcaption', (e) => e.textContent)) === '<img src=x onerror=window.pwned=4>.png', 'file name as text');
  check((await page.$$eval('img[onerror]', (n) => n.length)) === 0 && (await page.evaluate(() => window.pwned)) === undefined, 'nothing injected ran');
  await page.click('#new-chat');
  await page.close();

  // ---- The multimodal reference checkpoint: an image and a recording.
  const gguf = `${data}/golden-gguf`;
  const mm = await startServer(g4, ['-m', `${gguf}/multimodal-bf16.gguf`, '--mmproj', `${gguf}/multimodal-mmproj-bf16.gguf`, '-c', '4096']);
  servers.push(mm);
  const mmPage = await newPage(mm.base);
  const mmRequests = recordRequests(mmPage);
  await mmPage.waitForFunction(() => document.querySelector('#model').textContent === 'multimodal-bf16.gguf');
  await mmPage.click('#settings-toggle');
  await setSetting(mmPage, 'temperature', 0);
  await setSetting(mmPage, 'max_tokens', 8);
  const png = readFileSync(`${data}/media/sample.png`).toString('base64');
  await (await mmPage.$('#attach')).uploadFile(`${data}/media/sample.png`);
  await mmPage.waitForSelector('#pending .chip');
  // A pasted and a dropped picture land in the composer too (then are removed).
  await mmPage.evaluate(async (b64) => {
    const file = () => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'x.png', { type: 'image/png' });
    const withFile = () => { const dt = new DataTransfer(); dt.items.add(file()); return dt; };
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: withFile(), bubbles: true }));
    document.dispatchEvent(new DragEvent('drop', { dataTransfer: withFile(), bubbles: true }));
  }, png);
  await mmPage.waitForFunction(() => document.querySelectorAll('#pending .chip').length === 3);
  for (let n = 0; n < 2; n++) await mmPage.click('#pending .chip:last-child button');
  check((await mmPage.$$('#pending .chip')).length === 1, 'removing attachments');
  const question = 'What is this?';
  const expectedImage = await chatApi(mm.base, [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }, { type: 'text', text: question }] }], { max_tokens: 8 });
  await sendPrompt(mmPage, question);
  reply = await answered(mmPage);
  const parts = mmRequests.at(-1).messages[0].content;
  check(parts[0].type === 'image_url' && parts[0].image_url.url === `data:image/png;base64,${png}` && parts[1].text === question,
        'the request carries the picture as its bytes');
  check(reply.state === 'done' && reply.text === expectedImage.text, `image answer ${JSON.stringify(reply)} != ${JSON.stringify(expectedImage.text)}`);
  check(reply.stats.prompt === expectedImage.usage.prompt_tokens && reply.stats.prompt > 200, `image prompt tokens: ${JSON.stringify(reply.stats)}`);
  check(await mmPage.$('#messages .msg.user img[src^="data:image/png;base64,"]'), 'the thumbnail in the transcript');

  // A WAV file picked goes as it is; a recording from the (fake) microphone becomes a 16-bit mono WAV that the
  // server answers as the API does.
  await mmPage.click('#new-chat');
  await (await mmPage.$('#attach')).uploadFile(`${data}/media/sample.wav`);
  await mmPage.waitForSelector('#pending .chip[data-kind="audio"]');
  const picked = await mmPage.evaluate(() => pending[0].url);
  check(/^data:audio\/[\w-]+;base64,/.test(picked) && picked.split(',')[1] === readFileSync(`${data}/media/sample.wav`).toString('base64'),
        'a picked WAV keeps its bytes');
  await mmPage.click('#pending .chip button');
  await mmPage.click('#record');
  await sleep(1500);
  await mmPage.click('#record');
  await mmPage.waitForSelector('#pending .chip[data-kind="audio"]');
  const wav = Buffer.from((await mmPage.evaluate(() => pending[0].url)).split(',')[1], 'base64');
  const rate = wav.readUInt32LE(24);
  check(wav.toString('latin1', 0, 4) === 'RIFF' && wav.toString('latin1', 8, 12) === 'WAVE' && wav.readUInt16LE(20) === 1 &&
        wav.readUInt16LE(22) === 1 && wav.readUInt16LE(34) === 16 && wav.readUInt32LE(40) === wav.length - 44 &&
        wav.length - 44 > rate, `recorded WAV: ${wav.length} bytes at ${rate} Hz`);
  await sendPrompt(mmPage, question);
  reply = await answered(mmPage);
  const audioPart = mmRequests.at(-1).messages[0].content[0];
  check(await mmPage.$('#messages .msg.user audio[controls][src^="data:audio/wav;base64,"]'), 'a player for the recording in the transcript');
  check(audioPart.type === 'input_audio' && audioPart.input_audio.format === 'wav' && audioPart.input_audio.data === wav.toString('base64'),
        'the request carries the recording');
  const expectedAudio = await chatApi(mm.base, [{ role: 'user', content: [
    { type: 'input_audio', input_audio: { data: wav.toString('base64'), format: 'wav' } }, { type: 'text', text: question }] }], { max_tokens: 8 });
  const textOnly = await chatApi(mm.base, [{ role: 'user', content: question }], { max_tokens: 1 });
  check(reply.state === 'done' && reply.text === expectedAudio.text && reply.stats.prompt === expectedAudio.usage.prompt_tokens &&
        reply.stats.prompt > textOnly.usage.prompt_tokens, `recording answered: ${JSON.stringify(reply)} vs ${JSON.stringify(expectedAudio)}`);

  // A picked video goes as it is in a video_url part (2.2 s of H.264 and AAC: 32 frames and the sound).
  const clip = join(tmp, 'clip.mp4');
  const ffmpeg = spawnSync('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
    'testsrc2=size=100x70:rate=25:duration=2.2', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=16000:duration=2.2',
    '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip]);
  if (ffmpeg.error?.code === 'ENOENT') {
    console.log('web chat: video NOT checked: no ffmpeg program to write the clip (Debian ffmpeg)');
  } else {
    check(ffmpeg.status === 0, `ffmpeg wrote the clip: ${ffmpeg.stderr}`);
    await mmPage.click('#new-chat');
    await (await mmPage.$('#attach')).uploadFile(clip);
    await mmPage.waitForSelector('#pending .chip[data-kind="video"]');
    await sendPrompt(mmPage, question);
    reply = await answered(mmPage);
    const url = `data:video/mp4;base64,${readFileSync(clip).toString('base64')}`;
    const videoPart = mmRequests.at(-1).messages[0].content[0];
    check(videoPart.type === 'video_url' && videoPart.video_url.url === url, 'the request carries the video as its bytes');
    check(await mmPage.$('#messages .msg.user video[controls][src^="data:video/mp4;base64,"]'), 'a player for the video in the transcript');
    const expectedVideo = await chatApi(mm.base, [{ role: 'user', content: [
      { type: 'video_url', video_url: { url } }, { type: 'text', text: question }] }], { max_tokens: 8 });
    check(reply.state === 'done' && reply.text === expectedVideo.text && reply.stats.prompt === expectedVideo.usage.prompt_tokens &&
          reply.stats.prompt > 32 * 70, `video answered: ${JSON.stringify(reply)} vs ${JSON.stringify(expectedVideo)}`);
  }

  // The screenshot: the image question again, with the settings open.
  await mmPage.click('#new-chat');
  await (await mmPage.$('#attach')).uploadFile(`${data}/media/sample.png`);
  await mmPage.waitForSelector('#pending .chip');
  await sendPrompt(mmPage, question);
  await answered(mmPage);
  await mmPage.screenshot({ path: screenshot });
  check(readFileSync(screenshot).readUInt32BE(16) === 1280 && readFileSync(screenshot).readUInt32BE(20) === 800, 'a 1280x800 screenshot');
  check(pageErrors.length === 0, `errors in the page: ${pageErrors}`);
  console.log(`web chat: ${checks} checks passed; screenshot ${screenshot}`);
} finally {
  await browser.close();
  for (const s of servers) s.proc.kill('SIGTERM');
}
