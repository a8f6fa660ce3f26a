/**
 * The one error type the audio front throws on bad input (files or captures): corrupt,
 * truncated or unsupported data. The message names the reason (and the file, when known),
 * fit for a one-line report to the user.
 */
export class AudioFormatError extends Error {
  override readonly name = 'AudioFormatError';
  /** The file the data came from, when the error was raised for a file. */
  readonly file: string | undefined;
  /** The bare reason, without the file name. */
  readonly reason: string;

  constructor(reason: string, file?: string, options?: { cause?: unknown }) {
    super(file === undefined ? reason : `${file}: ${reason}`, options);
    this.reason = reason;
    this.file = file;
  }

  /** The same error, attributed to a file. */
  withFile(file: string): AudioFormatError {
    return new AudioFormatError(this.reason, file, { cause: this.cause });
  }
}
