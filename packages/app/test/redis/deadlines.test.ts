import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Deadlines, type DeadlineCall } from '../../src/redis/deadlines.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

test('calls that answer in time settle with their own value or error', async () => {
  const deadlines = new Deadlines(200);
  assert.equal(await deadlines.race(Promise.resolve(1)), 1);
  assert.equal(await deadlines.race(later(20, 'x')), 'x');
  await assert.rejects(deadlines.race(Promise.reject(new Error('boom'))), /boom/);
});

test('a call without an answer rejects after the timeout, also among many that answered', async () => {
  const deadlines = new Deadlines(60);
  const answered = Array.from({ length: 2000 }, (_, i) => deadlines.race(Promise.resolve(i)));
  const started = Date.now();
  // Each rejection is handled from the start: on a loaded machine a timer may fire late, so a call
  // can expire while the test still sleeps (an unhandled rejection, although the code is right).
  const hanging = assert.rejects(
    deadlines.race(new Promise<never>(() => undefined)),
    /Redis did not answer within 60 ms/,
  );
  await sleep(10);
  const second = assert.rejects(deadlines.race(new Promise<never>(() => undefined)), /within 60 ms/);
  assert.deepEqual((await Promise.all(answered)).length, 2000);
  await hanging;
  const waited = Date.now() - started;
  assert.ok(waited >= 55, `rejected after ${waited} ms, before its 60 ms were up`);
  await second;
  assert.ok(Date.now() - started >= 65, 'the second call got its own full timeout');
});

test('an answer after the timeout does not change the outcome', async () => {
  const deadlines = new Deadlines(20);
  await assert.rejects(deadlines.race(later(80, 'late')), /within 20 ms/);
  await sleep(100);
  assert.equal(await deadlines.race(later(5, 'on time')), 'on time');
});

test('a duration of 0 returns the promise itself', () => {
  const promise = Promise.resolve(1);
  assert.equal(new Deadlines(0).race(promise), promise);
});

test('a tracked call expires once unless answered in time, and a late answer is refused', async () => {
  const deadlines = new Deadlines(30);
  const expired: string[] = [];
  const call = (name: string): DeadlineCall => ({
    deadline: 0,
    settled: false,
    expire: () => expired.push(name),
  });
  const onTime = call('on time');
  const late = call('late');
  deadlines.track(onTime);
  deadlines.track(late);
  assert.equal(deadlines.answered(onTime), true);
  assert.equal(deadlines.answered(onTime), false, 'a second answer is refused');
  await sleep(80);
  assert.deepEqual(expired, ['late']);
  assert.equal(deadlines.answered(late), false, 'an answer after expiry is refused');
});

test('with nothing pending the shared timer does not keep the process alive', async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const deadlines = new Deadlines(10_000);
  let answer!: (value: number) => void;
  const pending = deadlines.race(new Promise<number>((resolve) => (answer = resolve)));
  assert.equal(timers(), before + 1, 'a pending call keeps the timer referenced');
  answer(1);
  assert.equal(await pending, 1);
  assert.equal(timers(), before, 'no referenced timer once nothing is pending');
  const again = deadlines.race(Promise.resolve(2));
  assert.equal(timers(), before + 1, 'the next call references it again');
  assert.equal(await again, 2);
  assert.equal(timers(), before);
});
