import { Global, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { appConfig } from './app.config';

/** Loads and validates the configuration once; `appConfig.KEY` is injectable everywhere. */
@Global()
@Module({
  imports: [
    ConfigModule.forRoot({ ignoreEnvFile: true, load: [appConfig], isGlobal: true, cache: true }),
  ],
})
export class AppConfigModule {}
