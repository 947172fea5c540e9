// Whose a source is, for the Sources list: the person (a link to manage them), or a note that
// the source holds several people or nobody known.
import type { Source } from '../api/types';
import { useApp } from '../AppContext';
import { href } from '../lib/router';
import { PersonAvatar } from './PersonSwitcher';
import './people.css';

export function SourcePerson({ source }: { source: Source }) {
  const { profiles } = useApp();
  if (!profiles || profiles.length === 0) return null;
  const p = source.profile_id ? profiles.find((x) => x.id === source.profile_id) : undefined;
  if (!p) {
    return <span className="source-person muted small">{source.resource_count > 0 ? 'Several people, or not linked' : 'No person yet'}</span>;
  }
  return (
    <a className="source-person small" href={href(`/people/${p.id}`)} title={`Manage ${p.name}`}>
      <PersonAvatar person={p} size="sm" />
      <span>{p.name}</span>
    </a>
  );
}
