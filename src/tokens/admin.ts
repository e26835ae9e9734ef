/**
 * What an access token must carry to manage clients through the admin API (/register).
 */

/** The scope of admin tokens. */
export const ADMIN_SCOPE = "tollgate:admin";

/** The audience admin tokens must carry: the registration endpoint itself (RFC 8707). */
export const adminAudience = (issuer: string): string => `${issuer}/register`;
