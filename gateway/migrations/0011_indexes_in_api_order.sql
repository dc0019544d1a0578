-- Lists run newest first: ORDER BY <time> DESC, id DESC. The indexes had the id ascending, so PostgreSQL
-- could use them only for the time and sorted every parent's rows again (an incremental sort reads at least
-- 32 rows, and a nested list evaluated its policy on every one of them before keeping `first`). In the API's
-- order, the index scan stops after `first + 1` rows that pass.

DROP INDEX encounter_patient_start_idx;
CREATE INDEX encounter_patient_start_idx ON encounter (patient_id, period_start DESC, id DESC);
DROP INDEX observation_patient_effective_idx;
CREATE INDEX observation_patient_effective_idx ON observation (patient_id, effective_at DESC, id DESC);
DROP INDEX diagnostic_report_patient_idx;
CREATE INDEX diagnostic_report_patient_idx ON diagnostic_report (patient_id, effective_at DESC, id DESC);
DROP INDEX diagnostic_report_encounter_idx;
CREATE INDEX diagnostic_report_encounter_idx ON diagnostic_report (encounter_id, effective_at DESC, id DESC);
DROP INDEX observation_report_idx;
CREATE INDEX observation_report_idx ON observation (diagnostic_report_id, effective_at DESC, id DESC) WHERE diagnostic_report_id IS NOT NULL;
DROP INDEX observation_encounter_idx;
CREATE INDEX observation_encounter_idx ON observation (encounter_id, effective_at DESC, id DESC);
DROP INDEX observation_code_effective_idx;
CREATE INDEX observation_code_effective_idx ON observation (code, effective_at DESC, id DESC);
DROP INDEX observation_effective_idx;
CREATE INDEX observation_effective_idx ON observation (effective_at DESC, id DESC);
DROP INDEX condition_patient_idx;
CREATE INDEX condition_patient_idx ON condition (patient_id, recorded_at DESC, id DESC);
DROP INDEX medication_statement_patient_idx;
CREATE INDEX medication_statement_patient_idx ON medication_statement (patient_id, date_asserted DESC, id DESC);
DROP INDEX allergy_intolerance_patient_idx;
CREATE INDEX allergy_intolerance_patient_idx ON allergy_intolerance (patient_id, recorded_at DESC, id DESC);
DROP INDEX clinical_note_patient_idx;
CREATE INDEX clinical_note_patient_idx ON clinical_note (patient_id, created_at DESC, id DESC);
DROP INDEX clinical_note_encounter_idx;
CREATE INDEX clinical_note_encounter_idx ON clinical_note (encounter_id, created_at DESC, id DESC);
DROP INDEX care_plan_patient_idx;
CREATE INDEX care_plan_patient_idx ON care_plan (patient_id, created_at DESC, id DESC);
DROP INDEX appointment_patient_idx;
CREATE INDEX appointment_patient_idx ON appointment (patient_id, start_at DESC, id DESC);
DROP INDEX restriction_patient_idx;
CREATE INDEX restriction_patient_idx ON restriction (patient_id, created_at DESC, id DESC);
