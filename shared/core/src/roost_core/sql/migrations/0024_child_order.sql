-- Child runs listed in the order their parent triggered them: run_many's children share
-- one created_at (the transaction's), and their ids are random.
ALTER TABLE run_parents ADD COLUMN n bigserial;
