import { Global, Module, Provider } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { AppConfig, appConfig } from './app.config';
import { AppSettings, SETTINGS_GROUPS, settingsOf } from './app.settings';

/** Each group of the settings under its own class, so that a consumer injects only its concern. */
const groupProviders: Provider[] = Object.entries(SETTINGS_GROUPS).map(([group, token]) => ({
  provide: token,
  inject: [AppSettings],
  useFactory: (settings: AppSettings) => settings[group as keyof AppSettings],
}));

/**
 * Loads and validates the configuration once, then resolves it into typed groups
 * (app.settings.ts); `appConfig.KEY`, AppSettings and every group are injectable everywhere.
 * The groups follow `appConfig.KEY`, so a test that overrides it gets matching groups.
 */
@Global()
@Module({
  imports: [
    ConfigModule.forRoot({ ignoreEnvFile: true, load: [appConfig], isGlobal: true, cache: true }),
  ],
  providers: [
    {
      provide: AppSettings,
      inject: [appConfig.KEY],
      useFactory: (config: AppConfig) => settingsOf(config),
    },
    ...groupProviders,
  ],
  exports: [AppSettings, ...Object.values(SETTINGS_GROUPS)],
})
export class AppConfigModule {}
