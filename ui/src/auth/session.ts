import { useQuery } from "@tanstack/react-query";
import { useSyncExternalStore } from "react";
import { api, unwrap } from "../api/client";
import type { WhoAmI } from "../api/types";
import { type Credential, currentCredential, subscribe } from "./credential";

export function useCredential(): Credential | null {
  return useSyncExternalStore(subscribe, currentCredential, () => null);
}

/** How the server sees the signed-in credential: actor, role and permissions. */
export function useWhoAmI() {
  const credential = useCredential();
  return useQuery({
    queryKey: ["whoami", credential?.kind ?? "none"],
    queryFn: async () => unwrap(await api.GET("/api/v1/whoami")),
    enabled: credential !== null,
    staleTime: 60_000,
  });
}

export type Permission = "read" | "execute" | "signal" | "manage" | "admin";

/** Whether the signed-in role allows ``permission`` (buttons are shown only to those who may). */
export function useCan(permission: Permission): boolean {
  const { data } = useWhoAmI();
  return allows(data, permission);
}

export function allows(whoami: WhoAmI | undefined, permission: Permission): boolean {
  return whoami?.permissions.includes(permission) ?? false;
}
