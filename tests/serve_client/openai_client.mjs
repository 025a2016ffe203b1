// g4 serve driven by the official OpenAI client for Node (the `openai` npm package, pinned in package.json and
// installed by tests/fetch_test_packages.sh): models, non-streamed and streamed chat equal to `g4 run`, four
// concurrent streams each equal to its solo answer, an aborted stream after which every slot is free, completions,
// usage equal to the tokenizer's counts, logprobs, tools, and refusals as the SDK's typed errors.
//
// usage: node openai_client.mjs G4_EXE TESTS_DATA_DIR
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { startServer } from './start_server.mjs';

const [g4, data] = process.argv.slice(2);
const demo = `${data}/demo`;
const template = `${data}/chat-template/gemma4-official.jinja`;  // the demo model carries none; tools need one
let checks = 0;
const check = (cond, what) => {
  checks++;
  assert.ok(cond, what);
};

function g4Run(...args) {
  return execFileSync(g4, ['run', '--no-warmup', '-t', '2', '--chat-template', template, ...args], { encoding: 'utf8', timeout: 300000 });
}

async function metrics(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))[1]);
  return { busy: value('g4_slots_busy'), queued: value('g4_requests_queued') };
}

async function tokenCount(base, content, addSpecial) {
  const r = await fetch(`${base}/tokenize`, { method: 'POST', body: JSON.stringify({ content, add_special: addSpecial }) });
  return (await r.json()).tokens.length;
}

const server = await startServer(g4, ['-m', demo, '--parallel', '4', '-c', '1024', '--chat-template-file', template]);
try {
  const client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 300000 });

  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === 'demo', `models: ${JSON.stringify(models.data)}`);

  // Non-streamed greedy chat equals g4 run on the same conversation.
  const user = 'def add(a, b):';
  const ask = (content, extra = {}) => ({ model: 'demo', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 16, ...extra });
  const r1 = await client.chat.completions.create(ask(user));
  const answer = r1.choices[0].message.content;
  check(g4Run('-m', demo, '-p', user, '-n', '16', '--temp', '0') === answer + '\n', `chat ${JSON.stringify(answer)} differs from g4 run`);
  check(r1.usage.total_tokens === r1.usage.prompt_tokens + r1.usage.completion_tokens, 'total_tokens');

  // Streamed: the SDK's chunks join to the same answer; usage when asked for.
  const stream = await client.chat.completions.create(ask(user, { stream: true, stream_options: { include_usage: true } }));
  let joined = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    joined += chunk.choices[0].delta.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  check(joined === answer, `streamed ${JSON.stringify(joined)} != ${JSON.stringify(answer)}`);
  check(finish === r1.choices[0].finish_reason, 'streamed finish_reason');
  check(usage && usage.completion_tokens === r1.usage.completion_tokens && usage.prompt_tokens === r1.usage.prompt_tokens, 'usage chunk');

  // Four concurrent streams, each equal to its answer alone.
  const prompts = ['class Stack:', 'import os', 'def main():', 'for i in range(10):'];
  const solo = {};
  for (const p of prompts) solo[p] = (await client.chat.completions.create(ask(p))).choices[0].message.content;
  const together = await Promise.all(
    prompts.map(async (p) => {
      let text = '';
      for await (const chunk of await client.chat.completions.create(ask(p, { stream: true })))
        text += chunk.choices[0]?.delta.content ?? '';
      return text;
    }),
  );
  prompts.forEach((p, i) => check(together[i] === solo[p], `concurrent ${p}: ${JSON.stringify(together[i])} != ${JSON.stringify(solo[p])}`));

  // An aborted stream: the server cancels it; it stays healthy and every slot is free again.
  const controller = new AbortController();
  const long = await client.chat.completions.create(ask('import sys', { stream: true, max_tokens: 900 }), { signal: controller.signal });
  let pieces = 0;
  try {
    for await (const chunk of long) {
      if (chunk.choices[0]?.delta.content && ++pieces === 3) controller.abort();
    }
  } catch (e) {
    check(e.name === 'AbortError' || e.constructor.name === 'APIUserAbortError', `abort: ${e}`);
  }
  let m = await metrics(server.base);
  for (let i = 0; i < 200 && (m.busy || m.queued); i++) {
    await new Promise((r) => setTimeout(r, 100));
    m = await metrics(server.base);
  }
  check(m.busy === 0 && m.queued === 0, `slots after the abort: ${JSON.stringify(m)}`);
  check((await client.chat.completions.create(ask(user))).choices[0].message.content === answer, 'after the abort');

  // Completions: raw text as g4 run --raw; usage counts are the tokenizer's.
  const c1 = await client.completions.create({ model: 'demo', prompt: 'Returns the', max_tokens: 8, temperature: 0 });
  check(g4Run('-m', demo, '--raw', '-p', 'Returns the', '-n', '8', '--temp', '0') === 'Returns the' + c1.choices[0].text + '\n',
        'completion differs from g4 run --raw');
  check(c1.usage.prompt_tokens === (await tokenCount(server.base, 'Returns the', true)), `completion prompt_tokens ${c1.usage.prompt_tokens}`);
  check(c1.usage.completion_tokens === 8 && c1.choices[0].finish_reason === 'length', 'completion usage');
  check((await tokenCount(server.base, 'Returns the' + c1.choices[0].text, true)) <= c1.usage.prompt_tokens + 8, 'completion text tokens');

  // Logprobs as the SDK types them: one entry per answer token, top_logprobs sorted and containing the greedy pick.
  const lp = await client.chat.completions.create(ask(user, { logprobs: true, top_logprobs: 3 }));
  const entries = lp.choices[0].logprobs.content;
  check(entries.length === lp.usage.completion_tokens, `logprobs entries ${entries.length}`);
  for (const e of entries) {
    check(e.logprob <= 0 && e.top_logprobs.length === 3, 'logprob entry');
    check(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob, 'top_logprobs sorted');
    check(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4, 'greedy token is the most likely');
  }

  // Completions' legacy logprobs: per token its text, logprob, the N most likely (and the sampled one), offsets.
  const clp = await client.completions.create({ model: 'demo', prompt: 'Returns the', max_tokens: 4, temperature: 0, logprobs: 2 });
  const l = clp.choices[0].logprobs;
  check(l.tokens.length === 4 && l.token_logprobs.length === 4 && l.top_logprobs.length === 4, `completion logprobs ${JSON.stringify(l)}`);
  check(l.tokens.join('') === clp.choices[0].text, 'completion logprobs tokens join to the text');
  l.top_logprobs.forEach((top, i) => check(Object.keys(top).length >= 2 && top[l.tokens[i]] === l.token_logprobs[i], 'completion top_logprobs'));

  // Tools declared (rendered by the template): the demo answers in text. A named tool_choice ends the prompt inside
  // that call; the demo's vocabulary has no <|tool_call> token, so its continuation is malformed and comes back as
  // the call's text (real vocabularies: test_tool_calls, test_session). tool_choice "required" needs the call
  // tokens for its grammar: a 400 the SDK raises with its message.
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
                   parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const withTools = await client.chat.completions.create({ ...ask('Weather in Paris?'), tools });
  check(typeof withTools.choices[0].message.content === 'string' && withTools.usage.prompt_tokens > r1.usage.prompt_tokens,
        'tools rendered into the prompt');
  const named = await client.chat.completions.create({ ...ask('Weather in Paris?'), tools,
                                                       tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  const msg = named.choices[0].message;
  check((msg.tool_calls ?? []).length === 1 ? msg.tool_calls[0].function.name === 'get_weather'
                                            : msg.content.startsWith('<|tool_call>call:get_weather{'), `named call: ${JSON.stringify(msg)}`);
  try {
    await client.chat.completions.create({ ...ask('Weather in Paris?'), tools, tool_choice: 'required' });
    check(false, 'a required call without <|tool_call> tokens was accepted');
  } catch (e) {
    check(e.status === 400 && /tool_call/.test(e.message), `required call: ${e}`);
  }
  // A refusal arrives as the SDK's typed error with the field named.
  try {
    await client.chat.completions.create(ask(user, { n: 2 }));
    check(false, 'n=2 was accepted');
  } catch (e) {
    check(e.status === 400 && e.param === 'n', `n=2: ${e}`);
  }
  console.log(`openai client: ${checks} checks passed`);
} finally {
  server.proc.kill('SIGTERM');
}
