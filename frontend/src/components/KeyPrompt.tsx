import { useState, type FormEvent } from 'react';

/**
 * Asks for a key that may read, when the daemon protects its reads
 * (`web.auth.protect_reads`) and the dashboard has none, or had one the
 * daemon refused. The key stays in this browser.
 */
export function KeyPrompt({ refused, onSave }: { refused: boolean; onSave: (key: string) => void }) {
  const [key, setKey] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (key.trim() !== '') onSave(key.trim());
  };
  return (
    <form className="banner key-prompt" role="alert" aria-label="Read access" onSubmit={submit}>
      <p>
        {refused
          ? 'The key this browser gave was refused. Enter a key that may read.'
          : "This network's readings need a key that may read."}
      </p>
      <label>
        Read key{' '}
        <input
          type="password"
          autoComplete="off"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          required
        />
      </label>{' '}
      <button type="submit">Use key</button>
    </form>
  );
}
