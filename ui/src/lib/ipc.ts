// The one IPC client every feature uses. Each command has a typed function here, and every
// rejection becomes an IpcError, so screens never see a raw string or an unknown shape.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { CommandError } from "./bindings/CommandError";
import type { FieldError } from "./bindings/FieldError";
import type { RosterQuery } from "./bindings/RosterQuery";
import type { RosterEntry } from "./bindings/RosterEntry";
import type { HouseholdView } from "./bindings/HouseholdView";
import type { Household } from "./bindings/Household";
import type { Member } from "./bindings/Member";
import type { IncomeRecord } from "./bindings/IncomeRecord";
import type { Village } from "./bindings/Village";
import type { TrainingSession } from "./bindings/TrainingSession";
import type { Attendance } from "./bindings/Attendance";
import type { AttendanceStatus } from "./bindings/AttendanceStatus";
import type { Assessment } from "./bindings/Assessment";
import type { Visit } from "./bindings/Visit";
import type { FollowUp } from "./bindings/FollowUp";
import type { Product } from "./bindings/Product";
import type { Listing } from "./bindings/Listing";
import type { RuleCheck } from "./bindings/RuleCheck";
import type { ListingSale } from "./bindings/ListingSale";
import type { PhotoView } from "./bindings/PhotoView";
import type { EnumDef } from "./bindings/EnumDef";
import type { PovertyLine } from "./bindings/PovertyLine";
import type { Settings } from "./bindings/Settings";
import type { VaultStatus } from "./bindings/VaultStatus";
import type { BackupPreview } from "./bindings/BackupPreview";
import type { IdCardReveal } from "./bindings/IdCardReveal";
import type { SettingsView } from "./bindings/SettingsView";
import type { SyncStatus } from "./bindings/SyncStatus";
import type { SyncProgress } from "./bindings/SyncProgress";
import type { ConflictView } from "./bindings/ConflictView";
import type { RecordSync } from "./bindings/RecordSync";
import type { Attendee } from "./bindings/Attendee";
import type { DeletionImpact } from "./bindings/DeletionImpact";
import type { PossibleDuplicate } from "./bindings/PossibleDuplicate";
import type { IdCardFacts } from "./bindings/IdCardFacts";
import type { HouseholdClosure } from "./bindings/HouseholdClosure";
import type { SubmissionState } from "./bindings/SubmissionState";
import type { CheckInCandidate } from "./bindings/CheckInCandidate";
import type { CheckInReport } from "./bindings/CheckInReport";
import type { ScoreEntry } from "./bindings/ScoreEntry";
import type { AssessmentPhase } from "./bindings/AssessmentPhase";
import type { Filter } from "./bindings/Filter";
import type { Report } from "./bindings/Report";
import type { HouseholdRow } from "./bindings/HouseholdRow";
import type { TrainerCandidate } from "./bindings/TrainerCandidate";

/** A command's failure, typed: a stable code, messages in both languages, and field errors. */
export class IpcError extends Error {
  readonly code: string;
  readonly messageZh: string;
  readonly messageEn: string;
  readonly fields: FieldError[];

  constructor(error: CommandError) {
    super(error.message);
    this.name = "IpcError";
    this.code = error.code;
    this.messageZh = error.message_zh;
    this.messageEn = error.message_en;
    this.fields = error.fields ?? [];
  }

  /** The message in the given language. */
  text(language: string): string {
    return language === "en" ? this.messageEn : this.messageZh;
  }

  /** Field name to message, in the given language, for showing each error beside its field. */
  fieldMessages(language: string): Record<string, string> {
    const messages: Record<string, string> = {};
    for (const field of this.fields) {
      const message = language === "en" ? field.message_en : field.message_zh;
      messages[field.field] = messages[field.field] ? `${messages[field.field]}；${message}` : message;
    }
    return messages;
  }
}

function isCommandError(value: unknown): value is CommandError {
  return typeof value === "object" && value !== null && "code" in value && "message_zh" in value;
}

/** Turns whatever a rejected invoke gave into an IpcError. */
export function toIpcError(reason: unknown): IpcError {
  if (reason instanceof IpcError) return reason;
  if (isCommandError(reason)) return new IpcError(reason);
  const text = reason instanceof Error ? reason.message : String(reason);
  return new IpcError({ code: "ipc", message: text, message_zh: `内部错误：${text}`, message_en: `Internal error: ${text}` });
}

/** Calls a command; every rejection is an IpcError. */
export async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (reason) {
    throw toIpcError(reason);
  }
}

/** The app's commands, one typed function each. */
export const api = {
  searchHouseholds: (query: RosterQuery) => call<RosterEntry[]>("search_households", { query }),
  householdView: (id: string) => call<HouseholdView>("household_view", { id }),
  saveHousehold: (household: Household) => call<Household>("save_household", { household }),
  deleteHousehold: (id: string) => call<null>("delete_household", { id }),
  householdDeletionImpact: (id: string) => call<DeletionImpact>("household_deletion_impact", { id }),
  closeHousehold: (id: string, reason: HouseholdClosure, on: string, note: string | null) =>
    call<Household>("close_household", { id, reason, on, note }),
  reopenHousehold: (id: string) => call<Household>("reopen_household", { id }),
  householdDuplicates: (household: Household) => call<PossibleDuplicate[]>("household_duplicates", { household }),
  memberDuplicates: (member: Member) => call<PossibleDuplicate[]>("member_duplicates", { member }),
  duplicatesOfHousehold: (id: string) => call<PossibleDuplicate[]>("duplicates_of_household", { id }),
  idCardFacts: (number: string) => call<IdCardFacts | null>("id_card_facts", { number }),
  saveMember: (member: Member) => call<Member>("save_member", { member }),
  deleteMember: (id: string) => call<null>("delete_member", { id }),
  memberDeletionImpact: (id: string) => call<DeletionImpact>("member_deletion_impact", { id }),
  recordIncome: (record: IncomeRecord) => call<IncomeRecord>("record_income", { record }),
  correctIncome: (correctsId: string, record: IncomeRecord) => call<IncomeRecord>("correct_income", { correctsId, record }),
  listVillages: () => call<Village[]>("list_villages"),
  saveVillage: (village: Village) => call<Village>("save_village", { village }),
  listSessions: () => call<TrainingSession[]>("list_sessions"),
  saveSession: (session: TrainingSession) => call<TrainingSession>("save_session", { session }),
  checkIn: (sessionId: string, memberIds: string[], status: AttendanceStatus) =>
    call<Attendance[]>("check_in", { sessionId, memberIds, status }),
  sessionAttendance: (sessionId: string) => call<Attendance[]>("session_attendance", { sessionId }),
  sessionAttendees: (sessionId: string) => call<Attendee[]>("session_attendees", { sessionId }),
  removeAttendee: (sessionId: string, memberId: string) => call<null>("remove_attendee", { sessionId, memberId }),
  setAttendanceStatus: (sessionId: string, memberId: string, status: AttendanceStatus) =>
    call<Attendance>("set_attendance_status", { sessionId, memberId, status }),
  deleteSession: (id: string) => call<null>("delete_session", { id }),
  sessionDeletionImpact: (id: string) => call<DeletionImpact>("session_deletion_impact", { id }),
  sessionAssessments: (sessionId: string) => call<Assessment[]>("session_assessments", { sessionId }),
  checkInCandidates: (sessionId: string, villageId: string | null, text: string | null) =>
    call<CheckInCandidate[]>("check_in_candidates", { sessionId, villageId, text }),
  checkInNew: (sessionId: string, memberIds: string[], status: AttendanceStatus, note: string | null = null) =>
    call<CheckInReport>("check_in_new", { sessionId, memberIds, status, note }),
  setAttendanceNote: (sessionId: string, memberId: string, note: string | null) =>
    call<Attendance>("set_attendance_note", { sessionId, memberId, note }),
  saveScores: (sessionId: string, phase: AssessmentPhase, entries: ScoreEntry[]) => call<number>("save_scores", { sessionId, phase, entries }),
  saveAssessment: (assessment: Assessment) => call<Assessment>("save_assessment", { assessment }),
  trainerCandidates: (villageId: string | null) => call<TrainerCandidate[]>("trainer_candidates", { villageId }),
  outcomes: (filter: Filter) => call<Report>("outcomes", { filter }),
  outcomeHouseholds: (filter: Filter, key: string) => call<HouseholdRow[]>("outcome_households", { filter, key }),
  saveVisit: (visit: Visit) => call<Visit>("save_visit", { visit }),
  deleteVisit: (id: string) => call<null>("delete_visit", { id }),
  markFollowUpDone: (id: string) => call<Visit>("mark_follow_up_done", { id }),
  followUpsDue: (days: number) => call<FollowUp[]>("follow_ups_due", { days }),
  listProducts: () => call<Product[]>("list_products"),
  saveProduct: (product: Product) => call<Product>("save_product", { product }),
  listListings: () => call<Listing[]>("list_listings"),
  saveListing: (listing: Listing) => call<Listing>("save_listing", { listing }),
  getListing: (id: string) => call<Listing>("get_listing", { id }),
  checkListingRules: (listing: Listing) => call<RuleCheck[]>("check_listing_rules", { listing }),
  submitListing: (id: string) => call<Listing>("submit_listing", { id }),
  listingSales: (listingId: string) => call<ListingSale[]>("listing_sales", { listingId }),
  listingSubmissionState: (id: string) => call<SubmissionState>("listing_submission_state", { id }),
  listingPhotos: (listingId: string) => call<PhotoView[]>("listing_photos", { listingId }),
  /** Sends a picked file's bytes as the raw request body (no JSON encoding of megabytes). */
  importPhoto: async (listingId: string, bytes: Uint8Array, keepLocation: boolean): Promise<PhotoView[]> => {
    try {
      return await invoke<PhotoView[]>("import_photo", bytes, {
        headers: { "x-listing-id": listingId, "x-keep-location": keepLocation ? "1" : "0" },
      });
    } catch (reason) {
      throw toIpcError(reason);
    }
  },
  setPhotoCaption: (photoId: string, caption: string | null) => call<PhotoView[]>("set_photo_caption", { photoId, caption }),
  cropPhotoSquare: (photoId: string) => call<PhotoView[]>("crop_photo_square", { photoId }),
  setMainPhoto: (photoId: string) => call<PhotoView[]>("set_main_photo", { photoId }),
  reorderPhotos: (photoIds: string[]) => call<PhotoView[]>("reorder_photos", { photoIds }),
  deletePhoto: (photoId: string) => call<PhotoView[]>("delete_photo", { photoId }),
  enumLabels: () => call<EnumDef[]>("enum_labels"),
  povertyLines: () => call<PovertyLine[]>("poverty_lines"),
  getSettings: () => call<SettingsView>("get_settings"),
  setLanguage: (language: string) => call<Settings>("set_language", { language }),
  setServerUrl: (serverUrl: string) => call<Settings>("set_server_url", { serverUrl }),
  allowInsecureHost: (host: string) => call<Settings>("allow_insecure_host", { host }),
  forgetInsecureHost: (host: string) => call<Settings>("forget_insecure_host", { host }),
  exportBackup: (directory: string, passphrase: string | null) => call<string>("export_backup", { directory, passphrase }),
  previewBackup: (file: string, passphrase: string) => call<BackupPreview>("preview_backup", { file, passphrase }),
  restoreBackup: (file: string, passphrase: string, discardUnsynced: boolean) =>
    call<null>("restore_backup", { file, passphrase, discardUnsynced }),
  vaultStatus: () => call<VaultStatus>("vault_status"),
  setPassphrase: (passphrase: string) => call<null>("set_passphrase", { passphrase }),
  unlock: (passphrase: string) => call<null>("unlock", { passphrase }),
  lock: () => call<null>("lock"),
  changePassphrase: (old: string, next: string) => call<null>("change_passphrase", { old, new: next }),
  setLockAfter: (seconds: number) => call<Settings>("set_lock_after", { seconds }),
  forgetPassphrase: (confirmation: string) => call<null>("forget_passphrase", { confirmation }),
  revealIdCard: (memberId: string) => call<string | null>("reveal_id_card", { memberId }),
  idCardReveals: () => call<IdCardReveal[]>("id_card_reveals"),
  seedDemo: () => call<number>("seed_demo"),
  syncStatus: () => call<SyncStatus>("sync_status"),
  signIn: (serverUrl: string, username: string, password: string) =>
    call<Settings>("sign_in", { serverUrl, username, password }),
  workOffline: () => call<Settings>("work_offline"),
  signOut: () => call<Settings>("sign_out"),
  syncNow: () => call<SyncStatus>("sync_now"),
  listConflicts: () => call<ConflictView[]>("list_conflicts"),
  resolveConflict: (id: number, keepMine: boolean) => call<null>("resolve_conflict", { id, keepMine }),
  recordSyncStates: (table: string, ids: string[]) => call<RecordSync[]>("record_sync_states", { table, ids }),
  resendEdit: (id: number, value: unknown) => call<null>("resend_edit", { id, value }),
  onSyncProgress: (handler: (progress: SyncProgress) => void): Promise<UnlistenFn> =>
    listen<SyncProgress>("sync-progress", (event) => handler(event.payload)),
  /** The status after each sync the app makes by itself, and when the connection comes or goes. */
  onSyncStatus: (handler: (status: SyncStatus) => void): Promise<UnlistenFn> =>
    listen<SyncStatus>("sync-status", (event) => handler(event.payload)),
};
