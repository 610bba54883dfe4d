-- The media type of the manifest an image was scanned from (OCI or Docker schema 2), as the registry
-- served it: the MDVM view's `artifactDetails.mediaType`. Images scanned before it was kept have none.
ALTER TABLE images ADD COLUMN media_type TEXT;
