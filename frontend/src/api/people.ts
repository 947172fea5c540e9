// People (profiles) of the household: docs/openapi.yaml /profiles, /merges, /unlinked and the
// re-assignment routes. Calls go through the one client (token, errors) in ./client.
import { request } from './client';
import type { Counts, Profile } from './types';

export interface PatientLink {
  source_id: number;
  source_name: string;
  source_kind: 'manual' | 'provider';
  patient_ref: string;
  patient_id: string;
  profile_id: number | null;
  name: string | null;
  birth_date: string | null;
  resource_count: number;
}

export interface SourceLink {
  id: number;
  name: string;
  kind: 'manual' | 'provider';
  resource_count: number;
  shared?: boolean;
}

export interface Person extends Profile {
  created_at?: string;
  updated_at?: string;
  color: string;
  initials: string;
  gender?: string | null;
  resource_count: number;
  source_count: number;
  last_activity?: string | null;
  counts?: Counts;
  patients?: PatientLink[];
  sources?: SourceLink[];
}

export interface PersonInput {
  name?: string;
  birth_date?: string;
  gender?: string;
  color?: string;
  initials?: string;
}

export interface Merge {
  id: number;
  into_id: number;
  into_name: string;
  from_id: number | null;
  from_name: string;
  state: 'pending' | 'confirmed' | 'undone';
  moved: number;
  created_at: string;
}

export interface DeletePlan {
  profile_id: number;
  name: string;
  resource_count: number;
  counts: Counts;
  sources_deleted: SourceLink[];
  sources_kept: SourceLink[];
  deleted: boolean;
}

export interface Unlinked {
  resource_count: number;
  counts: Counts;
  sources: SourceLink[];
  patients: PatientLink[];
}

export interface Reassigned {
  source_id: number;
  patient?: string;
  profile_id: number | null;
  moved: number;
}

/** The household's people; `limit`: only the first ones (a large household's overview). */
export const listPeople = (withCounts = false, signal?: AbortSignal, limit?: number) =>
  request<Person[]>('/profiles', { query: { counts: withCounts ? 'true' : undefined, limit: limit ? String(limit) : undefined }, signal });

export const getPerson = (id: number, signal?: AbortSignal) => request<Person>(`/profiles/${id}`, { signal });

export const createPerson = (input: PersonInput) => request<Person>('/profiles', { method: 'POST', json: input });

export const updatePerson = (id: number, input: PersonInput) =>
  request<Person>(`/profiles/${id}`, { method: 'PATCH', json: input });

export const planDeletePerson = (id: number, signal?: AbortSignal) =>
  request<DeletePlan>(`/profiles/${id}/deletion`, { signal });

export const deletePerson = (id: number) => request<DeletePlan>(`/profiles/${id}`, { method: 'DELETE' });

/** Merges person `from` into person `into` (applied at once, undoable until confirmed). */
export const mergePeople = (into: number, from: number) =>
  request<Merge>(`/profiles/${into}/merge`, { method: 'POST', json: { from } });

export const pendingMerges = (signal?: AbortSignal) => request<Merge[]>('/merges', { signal });

export const undoMerge = (id: number) => request<Merge>(`/merges/${id}/undo`, { method: 'POST' });

export const confirmMerge = (id: number) => request<Merge>(`/merges/${id}/confirm`, { method: 'POST' });

export const reassignSource = (sourceId: number, profileId: number | null) =>
  request<Reassigned>(`/sources/${sourceId}/profile`, { method: 'PUT', json: { profile_id: profileId } });

export const reassignPatient = (sourceId: number, patientId: string, profileId: number | null) =>
  request<Reassigned>(`/sources/${sourceId}/patients/${encodeURIComponent(patientId)}/profile`, {
    method: 'PUT',
    json: { profile_id: profileId },
  });

export const getUnlinked = (signal?: AbortSignal) => request<Unlinked>('/unlinked', { signal });
