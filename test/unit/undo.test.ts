import { Undo, withUndo } from '../../src/sr/undo.js';

beforeAll(() => {
  process.env.FLATSNAP_SMLOG = '/dev/null';
});

test('a failure undoes the finished steps newest first and rethrows', async () => {
  const done: string[] = [];
  await expect(
    withUndo(async (undo) => {
      undo.add('step 1', async () => void done.push('undo 1'));
      undo.add('step 2', async () => void done.push('undo 2'));
      throw new Error('step 3 failed');
    }),
  ).rejects.toThrow('step 3 failed');
  expect(done).toEqual(['undo 2', 'undo 1']);
});

test('success commits: nothing is undone', async () => {
  const done: string[] = [];
  await expect(withUndo(async (undo) => (undo.add('x', async () => void done.push('x')), 7))).resolves.toBe(7);
  expect(done).toEqual([]);
});

test('a failing undo does not stop the others and is reported', async () => {
  const undo = new Undo();
  const done: string[] = [];
  undo.add('a', async () => void done.push('a'));
  undo.add('b', async () => {
    throw new Error('stuck');
  });
  undo.add('c', async () => void done.push('c'));
  const failed = await undo.rollback();
  expect(done).toEqual(['c', 'a']);
  expect(failed.map((f) => f.what)).toEqual(['b']);
  expect(undo.pending).toEqual([]);
});
