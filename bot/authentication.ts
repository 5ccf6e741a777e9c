/**
 * How the bot checks that an activity comes from the Bot Framework: the
 * token's signature against the keys Bot Framework publishes, its issuer, its
 * audience (this bot's app id), its lifetime and its service URL, all done by
 * botbuilder. Two things are added here.
 *
 * Where the keys are published can be given (`openIdMetadataUrl`), so that
 * tests and the sandbox check tokens against a stand-in instead of Microsoft's
 * public cloud; everything else stays as the public cloud has it.
 *
 * botbuilder reports a token whose signature does not verify, or that is not
 * yet valid, as an ordinary error, which its adapter answers with 500; every
 * refused token is answered 401 here, and logged with the reason.
 */
import {
  CallerIdConstants,
  ConfigurationBotFrameworkAuthentication,
  type Activity,
  type ConfigurationBotFrameworkAuthenticationOptions,
} from 'botbuilder';
import {
  AuthenticationConstants,
  AuthenticationError,
  type AuthenticateRequestResult,
} from 'botframework-connector';
import type { Logger } from '../core/log.ts';

export interface AuthenticationOptions {
  appId?: string;
  appPassword?: string;
  appTenantId?: string;
  appType: 'MultiTenant' | 'SingleTenant' | 'UserAssignedMSI';
  /** Bot Framework's OpenID metadata (which lists its signing keys); Microsoft's public cloud when unset. */
  openIdMetadataUrl?: string;
}

/** Errors of the JWT library that mean the token itself is bad. */
const TOKEN_ERRORS = new Set(['JsonWebTokenError', 'TokenExpiredError', 'NotBeforeError']);

class BotFrameworkTokens extends ConfigurationBotFrameworkAuthentication {
  constructor(
    config: ConfigurationBotFrameworkAuthenticationOptions,
    private readonly log: Logger,
  ) {
    super(config);
  }

  override async authenticateRequest(
    activity: Activity,
    authHeader: string,
  ): Promise<AuthenticateRequestResult> {
    try {
      return await super.authenticateRequest(activity, authHeader);
    } catch (error) {
      const refused =
        error instanceof Error && TOKEN_ERRORS.has(error.name)
          ? new AuthenticationError(`Unauthorized. ${error.message}`, 401)
          : error;
      if (refused instanceof AuthenticationError) {
        this.log.warn(
          { reason: refused.message, conversationId: activity.conversation?.id },
          'bot_token_refused',
        );
      }
      throw refused;
    }
  }
}

export function botAuthentication(
  o: AuthenticationOptions,
  log: Logger,
): ConfigurationBotFrameworkAuthentication {
  // Naming one endpoint makes botbuilder take all of them from here, so the rest are the public cloud's.
  const endpoints = o.openIdMetadataUrl
    ? {
        ToBotFromChannelOpenIdMetadataUrl: o.openIdMetadataUrl,
        ToBotFromChannelTokenIssuer: AuthenticationConstants.ToBotFromChannelTokenIssuer,
        ToBotFromEmulatorOpenIdMetadataUrl:
          AuthenticationConstants.ToBotFromEmulatorOpenIdMetadataUrl,
        ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
        ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
        OAuthUrl: AuthenticationConstants.OAuthUrl,
        CallerId: CallerIdConstants.PublicAzureChannel,
        ValidateAuthority: true,
      }
    : {};
  return new BotFrameworkTokens(
    {
      MicrosoftAppId: o.appId ?? '',
      MicrosoftAppPassword: o.appPassword ?? '',
      MicrosoftAppTenantId: o.appTenantId ?? '',
      MicrosoftAppType: o.appType,
      ...endpoints,
    },
    log,
  );
}
