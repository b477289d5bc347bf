// A newcomer's flow through openapi-fetch with types from openapi-typescript (schema.d.ts,
// generated from /openapi.json by tests/test_generated_clients.py, which type-checks this
// file with `tsc --strict` and then runs it): no cast, no `any`, only the fields a user means.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["ProblemDetail"];

const [baseUrl, email, password] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl });

function fail(what: string, problem: Problem | undefined): never {
  throw new Error(`${what}: ${problem?.code} ${problem?.detail}`);
}

async function main(): Promise<void> {
  const created = await client.POST("/auth/register", { body: { email, password } });
  if (!created.data) fail("register", created.error);
  const account: components["schemas"]["UserRead"] = created.data;
  if (account.email !== email) throw new Error("register: another email");

  const refused = await client.POST("/auth/jwt/login", {
    body: { username: email, password: "not it" },
    bodySerializer: (body) => new URLSearchParams(body),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  const code: Problem["code"] | undefined = refused.error?.code;
  if (code !== "LOGIN_BAD_CREDENTIALS") throw new Error(`login: ${code}`);

  const login = await client.POST("/auth/jwt/login", {
    body: { username: email, password },
    bodySerializer: (body) => new URLSearchParams(body),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  if (!login.data) fail("login", login.error);
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  const me = await client.GET("/users/me", { headers: bearer(login.data.access_token) });
  if (!me.data) fail("me", me.error);

  const renewed = await client.POST("/auth/jwt/refresh", {
    body: { refresh_token: login.data.refresh_token },
  });
  if (!renewed.data) fail("refresh", renewed.error);
  const headers = bearer(renewed.data.access_token);

  const sessions = await client.GET("/users/me/sessions", { headers });
  if (!sessions.data) fail("sessions", sessions.error);
  const current: boolean = sessions.data[0].current;
  if (sessions.data.length !== 1 || !current) throw new Error("sessions: not one current");

  const out = await client.POST("/auth/jwt/logout", { headers });
  if (out.response.status !== 204) throw new Error(`logout: ${out.response.status}`);

  const forgot = await client.POST("/auth/forgot-password", { body: { email } });
  if (forgot.response.status !== 202) throw new Error(`forgot: ${forgot.response.status}`);
  console.log("flow ok");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
