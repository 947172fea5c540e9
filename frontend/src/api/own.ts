// Calls for a person's own entries (POST/PUT/DELETE /resources) and the International Patient
// Summary (GET /export/ips). See docs/openapi.yaml.
import { buildUrl, request } from './client';

export interface OwnEntryResult {
  type: string;
  id: string;
  source_id: number;
}

export const createOwnEntry = (profile: number, resource: object) =>
  request<OwnEntryResult>('/resources', { method: 'POST', query: { profile }, json: resource });

export const updateOwnEntry = (type: string, id: string, resource: object) =>
  request<OwnEntryResult>(`/resources/${encodeURIComponent(type)}/${encodeURIComponent(id)}`, { method: 'PUT', json: resource });

export const deleteOwnEntry = (type: string, id: string) =>
  request<OwnEntryResult>(`/resources/${encodeURIComponent(type)}/${encodeURIComponent(id)}`, { method: 'DELETE' });

/** The person's choices for a summary. */
export interface IpsChoice {
  profile: number;
  /** Optional sections to include; problems, medications and allergies are always in. */
  sections: string[];
  since?: string;
  until?: string;
}

function ipsQuery(c: IpsChoice) {
  // An empty choice is sent as "," (no optional section), not left out (all of them).
  return { profile: c.profile, sections: c.sections.join(',') || ',', since: c.since, until: c.until };
}

/** The IPS document Bundle as JSON. */
export const getIps = (c: IpsChoice, signal?: AbortSignal) =>
  request<IpsBundle>('/export/ips', { query: ipsQuery(c), signal });

export const ipsUrl = (c: IpsChoice) => buildUrl('/export/ips', ipsQuery(c));

export interface IpsSection {
  title: string;
  code: { coding: { system: string; code: string; display?: string }[] };
  text?: { status: string; div: string };
  entry?: { reference: string }[];
  emptyReason?: { text?: string };
}

export interface IpsBundle {
  resourceType: 'Bundle';
  type: 'document';
  timestamp: string;
  entry: { fullUrl: string; resource: { resourceType: string; id: string; [k: string]: unknown } }[];
}
