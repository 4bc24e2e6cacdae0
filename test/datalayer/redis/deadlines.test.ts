import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Deadlines } from '../../../src/datalayer/redis/deadlines.ts';

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
  const hanging = deadlines.race(new Promise<never>(() => undefined));
  await sleep(10);
  const second = deadlines.race(new Promise<never>(() => undefined));
  assert.deepEqual((await Promise.all(answered)).length, 2000);
  await assert.rejects(hanging, /Redis did not answer within 60 ms/);
  const waited = Date.now() - started;
  assert.ok(waited >= 55 && waited < 1000, `waited ${waited} ms`);
  await assert.rejects(second, /within 60 ms/);
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
