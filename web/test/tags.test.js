// Source tags: which words link to the sources list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { citedIds, splitTags } from '../src/tags.js';

test('source ids inside tags are pieces of their own, the rest stays text', () => {
  assert.deepEqual(splitTags('Signed in Seoul [V S4, S5]'), [
    { text: 'Signed in Seoul [V ' },
    { source: 'S4' },
    { text: ', ' },
    { source: 'S5' },
    { text: ']' },
  ]);
  assert.deepEqual(splitTags('[V S14 para 1]'), [{ text: '[V ' }, { source: 'S14' }, { text: ' para 1]' }]);
});

test('tags citing no source id, and ids outside tags, link nothing', () => {
  assert.deepEqual(splitTags('[R YTN, KBS via §8.3]'), [{ text: '[R YTN, KBS via §8.3]' }]);
  assert.deepEqual(splitTags('S11 without brackets; [M]'), [{ text: 'S11 without brackets; [M]' }]);
  assert.deepEqual(splitTags(''), []);
  assert.deepEqual(splitTags(null), []);
});

test('cited ids, each once, in order', () => {
  assert.deepEqual(citedIds('[R S35, S37] then [V S11; S35] and [V S46 (in force 2011-10); R S8]'), ['S35', 'S37', 'S11', 'S46', 'S8']);
});
